"""Throughput, latency and peak memory of a backbone over drop numbers.

    python tools/analysis_tools/benchmark.py configs/sta_vits_k400_r64.py \
        --drop-numbers 0 32 48 64 --stock

Every drop number gets its own copy of the same random weights. After
warm-up, repetitions are interleaved across the drop numbers (r0, r1, ...,
r0, r1, ...) so that drift of the machine (clock, thermals, other load) falls
on all of them alike; the median of each is reported. A stock backbone
pruned by an ``STAPruningHook`` in ``custom_hooks`` is timed pruned at each
r, with the hook's strategy and seed. ``--stock`` adds MMAction2's own
backbone (same weights) as a row, to show that STA at r=0 costs nothing.
Speed-ups are against the first drop number. Peak memory is the largest
amount the forward holds at once above what it started with. The logic is
:func:`sta_mmaction.analysis.benchmark.benchmark_config`.
"""
import argparse
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
import torch
from mmengine.config import Config, DictAction
from mmaction.utils import register_all_modules

from sta_mmaction.analysis.benchmark import (benchmark_config,
                                             benchmark_table, write_benchmark)
from sta_mmaction.analysis.timing import setup_cpu
from sta_mmaction.apis import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Speed and memory of a backbone over drop numbers')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--drop-numbers', type=int, nargs='+', default=[0, 32, 48, 64])
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda; defaults to cuda when present')
    parser.add_argument(
        '--amp',
        choices=['fp16', 'bf16'],
        help='autocast dtype (CUDA or CPU); default full precision')
    parser.add_argument(
        '--stock',
        action='store_true',
        help='also time the stock MMAction2 backbone with the same weights')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument(
        '--flush-denormal',
        action='store_true',
        help='flush subnormal floats to zero on the CPU, for every variant '
        '(stock Swin\'s shift mask makes subnormals; see '
        'benchmark_swin_cpu.py)')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/benchmark',
        help='where the JSON and the PNG go')
    parser.add_argument('--json', help='JSON path; defaults in --out-dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_cpu(args.threads, args.flush_denormal)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    result = benchmark_config(cfg, args.drop_numbers, args.stock, args.device,
                              args.batch_size, args.warmup, args.repeats,
                              args.amp)
    title = (f'{osp.basename(args.config)}, batch {args.batch_size}, view '
             f'{tuple(result["shape"][1:])}, {result["hardware"]}, '
             f'amp={args.amp or "off"}, subnormals '
             f'{"flushed" if args.flush_denormal else "kept"}')
    print(title)
    print(benchmark_table(result['rows']))
    json_path, png_path = write_benchmark(
        result,
        args.out_dir,
        osp.splitext(osp.basename(args.config))[0],
        title,
        args.json,
        config=args.config,
        batch_size=args.batch_size,
        amp=args.amp,
        flush_denormal=args.flush_denormal,
        warmup=args.warmup,
        repeats=args.repeats)
    print(f'wrote {json_path} and {png_path}')
    return result


if __name__ == '__main__':
    run_cli(main)
