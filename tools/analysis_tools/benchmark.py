"""Speed and memory of every variant of a backbone, side by side.

    python tools/analysis_tools/benchmark.py --model vit-s --threads 1 \
        --drop-numbers 0 64 --compile 64
    python tools/analysis_tools/benchmark.py --model swin-t --threads 1
    python tools/analysis_tools/benchmark.py --model vit-s --threads 1 \
        --drop-numbers 0 64 --strategies random tome vidtldr rlt
    python tools/analysis_tools/benchmark.py --model vit-s --threads 1 \
        --drop-numbers 0 64 --runtime onnxruntime
    python tools/analysis_tools/benchmark.py --model vit-b --device cuda \
        --batch-size 32 --amp bf16 --amp-only --number 10 --compile 64

Prints the ``torch.utils.benchmark.Compare`` table, a row per variant (ms per
clip, clips/s, peak memory, x stock fp32, x best r=0, STA / oracle), the
environment and, for Video Swin on the CPU, where an r=0 forward's time goes;
writes ``<out-dir>/<model or config>.json``. The figures: ``docs/speed.md``.
"""
import argparse
import json
import os
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers)
import torch
from mmaction.utils import register_all_modules
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from sta_mmaction.analysis.speed import TINY, setup_cpu, speed_benchmark
from sta_mmaction.analysis.table import format_table
from sta_mmaction.apis import run_cli
from sta_mmaction.apis.cli import check_output_dir, stderr_without
from sta_mmaction.models import pruning_of, sta_class

#: The checkout, for ``--model``'s configs.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS = {name: f'sta_{name.replace("-", "")}_k400_r0.py' for name in (
    'vit-s', 'vit-b', 'vit-l', 'vit-h', 'swin-t', 'swin-s', 'swin-b')}
COLUMNS = (('gflops', 'GFLOPs', '.2f'), ('ms', 'ms/clip', '.2f'),
           ('clips_per_s', 'clips/s', '.2f'), ('peak_mem_mb', 'peak MiB',
                                               '.1f'),
           ('speedup_vs_stock', 'x stock fp32', '.2f'),
           ('speedup_vs_best_r0', 'x best r=0', '.2f'),
           ('oracle_ratio', 'STA/oracle', '.3f'),
           ('speedup_vs_runtime_r0', 'x own r=0', '.2f'))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', nargs='?', help='config file (or --model)')
    p.add_argument('--model', choices=sorted(MODELS), help='our r=0 config')
    p.add_argument('--drop-numbers', type=int, nargs='+',
                   help='default 0 32 48 64 (ViT) or 0 320 (Swin)')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--repeats', type=int, default=5,
                   help='interleaved rounds per variant')
    p.add_argument('--number', type=int, default=1,
                   help='timed forwards per round')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--amp', choices=['fp16', 'bf16'])
    p.add_argument('--amp-only', action='store_true',
                   help='STA and oracle rows under --amp only')
    p.add_argument('--compile', type=int, nargs='*', metavar='R',
                   help='compiled fused rows (CUDA graphs on a GPU) at these '
                   'r (none named: every r)')
    p.add_argument('--no-tf32', action='store_true',
                   help='CUDA: float32 matmuls in full fp32')
    p.add_argument('--clip', type=int, nargs=3, metavar=('T', 'H', 'W'))
    p.add_argument('--breakdown-repeats', type=int,
                   help='Swin on the CPU: r=0 forwards profiled (default 2)')
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument('--flush-denormal', action='store_true')
    p.add_argument('--strategies', nargs='+', default=(),
                   help='other strategies timed at every r > 0, beside the '
                   "config's, against the same oracle")
    p.add_argument('--runtime', choices=['onnxruntime'],
                   help='also each r exported to ONNX and run there '
                   '(pip install -e .[deploy])')
    p.add_argument('--provider', default='CPUExecutionProvider',
                   help="onnxruntime's execution provider")
    p.add_argument('--tiny', action='store_true',
                   help='tiny backbone, clip and r: a seconds-long check '
                   '(of --model vit-s when no model is given)')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.tiny and args.model is None and args.config is None:
        args.model = 'vit-s'  # --tiny alone: the seconds-long check of ViT-S
    if (args.model is None) == (args.config is None):
        raise ValueError('give a config file or --model, not both or '
                         f'neither; models: {sorted(MODELS)}.')
    config = args.config or osp.join(ROOT, 'configs', MODELS[args.model])
    try:
        torch.device(args.device)
    except RuntimeError:
        raise ValueError(f'--device={args.device!r} is not a torch device; '
                         'use cpu, cuda or cuda:<index>.') from None
    check_output_dir(args.out_dir, '--out-dir')
    setup_cpu(args.threads, args.flush_denormal)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(args.cfg_options or {})
    rs, clip = args.drop_numbers, args.clip
    if args.tiny:
        kind = sta_class(pruning_of(cfg).backbone).__name__
        cfg.model.backbone.update(TINY[kind][0])
        rs, clip = rs or TINY[kind][2], clip or TINY[kind][1]
    compile = args.compile or args.compile is not None  # [] -> every r
    with stderr_without():  # torch.profiler's start/stop lines
        result = speed_benchmark(cfg, rs, args.device, args.batch_size,
                                 args.repeats, args.number, args.amp,
                                 args.amp_only, compile, clip,
                                 not args.no_tf32, args.breakdown_repeats,
                                 strategies=args.strategies,
                                 runtime=args.runtime,
                                 provider=args.provider)
    table = format_table(
        [[row['variant']] + [
            '' if row.get(k) is None else format(row[k], f)
            for k, _, f in COLUMNS] + [row['note']]
         for row in result['rows']],
        ['variant'] + [title for _, title, _ in COLUMNS] + ['note'])
    lines = [
        f'{osp.basename(config)}: {result["backbone"]}, batch '
        f'{tuple(result["shape"])}, median of {result["repeats"]} rounds x '
        f'{result["number"]} on the {result["clock"]}', result['compare'],
        table, 'env: ' + ', '.join(f'{k}={v}'
                                   for k, v in result['env'].items())]
    for att, part in (result['breakdown'] or {}).items():
        share = {k: part[k] / part['total']
                 for k in ('fixed', 'per_token', 'attention', 'other')}
        lines.append(
            f'Swin {att} r=0: fixed (embedding, stage 1) '
            f'{share["fixed"]:.0%}, per-token {share["per_token"]:.0%}, '
            f'window attention of stages 2-4 {share["attention"]:.0%}, '
            f'other {share["other"]:.0%}; Amdahl at '
            f'r={result["drop_numbers"][-1]}: ideal {part["ideal"]:.2f}x, '
            f'ceiling {part["ceiling"]:.2f}x (attention scores of stages '
            f'2-4 at r={result["drop_numbers"][-1]}: '
            + ' / '.join(f'{f:.0%}' for f in part['scores']) +
            ' of full windows)')
    os.makedirs(args.out_dir, exist_ok=True)
    name = args.model or osp.splitext(osp.basename(config))[0]
    result['json'] = osp.join(args.out_dir, f'{name}.json')
    with open(result['json'], 'w') as f:
        json.dump(dict(vars(args), config=config, **result), f, indent=1)
    print_log('\n'.join(lines + [f'wrote {result["json"]}']),
              logger='current')
    return result


if __name__ == '__main__':
    run_cli(main)
