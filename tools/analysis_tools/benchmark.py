"""Every speed variant of a backbone side by side, in one run.

    python tools/analysis_tools/benchmark.py --model vit-s --threads 1 \
        --repeats 7 --amp bf16
    python tools/analysis_tools/benchmark.py --model swin-t --threads 1 \
        --repeats 5
    python tools/analysis_tools/benchmark.py --model vit-b --device cuda \
        --batch-size 32 --amp bf16 --amp-only --warmup 50 --repeats 30

One backbone is built (random weights) from ``--model``'s config or the
given one, and copies with the same weights are timed on one random clip:
MMAction2's stock backbone in float32, STA at each ``--drop-numbers`` with
the explicit attention and with ``fused_attention=True``, an oracle of each
pruned one (the same blocks on the token counts STA keeps, the survivors
sliced by position with no scoring: the physical limit of pruning), for
Video Swin STA's path at r=0, and with ``--amp`` / ``--compile`` those
variants again. After ``--warmup`` runs the ``--repeats`` are interleaved
across all variants; medians are reported.

Columns: ms per clip on the wall clock and in process CPU time, clips/s,
peak forward memory (tensor memory alive at once above the start: CUDA's
allocator peak, or on the CPU the torch profiler's allocation events), the
speed-up over the stock backbone in float32 and over the fastest r=0 row,
and STA's time over its oracle's. With ``--threads 1`` on the CPU, clips/s,
speed-ups and targets are taken on the process CPU time (the forward's own
compute, steady on a loaded machine), else on the wall clock. Then the
issue's targets with pass/fail, and for Video Swin where each r=0 forward's
time goes (Amdahl's bound). The JSON (with every timed run and the 1-minute
load average) and a PNG go to ``--out-dir``. The logic is
:func:`sta_mmaction.analysis.benchmark.run_speed_benchmark`.
"""
import argparse
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
import torch
from mmengine.config import DictAction
from mmaction.utils import register_all_modules

from sta_mmaction.analysis.benchmark import (MODEL_CONFIGS, model_config,
                                             run_speed_benchmark)
from sta_mmaction.apis import run_cli

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Speed and memory of every variant of a backbone')
    parser.add_argument(
        'config', nargs='?', help='config file (or use --model)')
    parser.add_argument(
        '--model', help=f'one of {", ".join(MODEL_CONFIGS)} (our configs)')
    parser.add_argument(
        '--drop-numbers',
        type=int,
        nargs='+',
        help='r to time; defaults to 0 32 48 64 (ViT) or 0 320 (Swin)')
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
        help='also run every variant under this autocast')
    parser.add_argument(
        '--amp-only',
        action='store_true',
        help='with --amp: STA and oracle variants under --amp only')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='add torch.compile-d fused STA rows ("not supported" for '
        'pruned or fused Video Swin)')
    parser.add_argument(
        '--clip',
        type=int,
        nargs=3,
        metavar=('T', 'H', 'W'),
        help='clip shape; defaults to the config\'s test view')
    parser.add_argument(
        '--breakdown-repeats',
        type=int,
        help='Swin on the CPU: r=0 forwards timed part by part per '
        'attention path (default 2; 0 skips)')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument(
        '--flush-denormal',
        action='store_true',
        help='flush subnormal floats to zero on the CPU, for every variant')
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='shrink backbone, clip and drop numbers: a seconds-long check '
        'of every step')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/benchmark',
        help='where the JSON and the PNG go')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config = model_config(args.model, args.config, osp.join(ROOT, 'configs'))
    register_all_modules(init_default_scope=True)
    return run_speed_benchmark(
        config,
        args.drop_numbers,
        out_dir=args.out_dir,
        stem=args.model,
        threads=args.threads,
        flush_denormal=args.flush_denormal,
        cfg_options=args.cfg_options,
        tiny=args.tiny,
        device=args.device,
        batch_size=args.batch_size,
        warmup=args.warmup,
        repeats=args.repeats,
        amp=args.amp,
        amp_only=args.amp_only,
        compile=args.compile,
        clip_shape=args.clip,
        breakdown_repeats=args.breakdown_repeats)


if __name__ == '__main__':
    run_cli(main)
