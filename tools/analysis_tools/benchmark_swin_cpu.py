"""STASwin3D on the CPU: r=0 against a pruned r, and where the time goes.

    python tools/analysis_tools/benchmark_swin_cpu.py --threads 1 --repeats 5
    python tools/analysis_tools/benchmark_swin_cpu.py --flush-denormal

A shortcut for ``benchmark.py --model swin-t --device cpu --drop-numbers 0
R``: the same run of
:func:`sta_mmaction.analysis.benchmark.run_speed_benchmark`, which times, with
the same random weights, MMAction2's stock forward, STA at r=0 and r=R with
the explicit and the fused attention, the oracle of each pruned one, and
"STA path explicit r=0" (STA's gather/scatter forward with nothing dropped,
which separates what the pruning saves from what that path saves by
itself), then splits an r=0 forward of each attention path into the parts
pruning cannot shrink and the per-token rest (Amdahl's bound, see
:func:`~sta_mmaction.analysis.benchmark.swin_breakdown`).

``--flush-denormal`` sets ``torch.set_flush_denormal(True)`` for the whole
run, all variants alike. Stock Video Swin masks shifted windows with a
logit of -100, whose softmax weight is a subnormal float, and x86 CPUs
multiply subnormals several times slower; the STA path masks with -1e4,
whose weight is exactly zero (see ``sta_mmaction.models.swin_layers``).
"""
import argparse
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
from mmaction.utils import register_all_modules

from sta_mmaction.analysis.benchmark import model_config, run_speed_benchmark
from sta_mmaction.apis import run_cli

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: ``--arch`` -> ``benchmark.py --model``.
ARCHS = {'tiny': 'swin-t', 'small': 'swin-s', 'base': 'swin-b'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='STASwin3D CPU latency, r=0 against a pruned r')
    parser.add_argument('--arch', choices=sorted(ARCHS), default='tiny')
    parser.add_argument(
        '--drop-number',
        type=int,
        help='the pruned r; defaults to 320 (16 with --tiny)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument(
        '--flush-denormal',
        action='store_true',
        help='flush subnormal floats to zero (every variant)')
    parser.add_argument(
        '--breakdown-repeats',
        type=int,
        default=2,
        help='r=0 forwards timed part by part (median); 0 skips it')
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='a small Swin on a small clip: a seconds-long check')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/benchmark',
        help='where the JSON and the PNG go')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = ARCHS[args.arch]
    register_all_modules(init_default_scope=True)
    return run_speed_benchmark(
        model_config(model, None, osp.join(ROOT, 'configs')),
        None if args.drop_number is None else [0, args.drop_number],
        out_dir=args.out_dir,
        stem=f'{model}-cpu',
        threads=args.threads,
        flush_denormal=args.flush_denormal,
        tiny=args.tiny,
        device='cpu',
        warmup=args.warmup,
        repeats=args.repeats,
        breakdown_repeats=args.breakdown_repeats)


if __name__ == '__main__':
    run_cli(main)
