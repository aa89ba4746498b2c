"""CPU speed-up of STASwin3D-T at r=320 over r=0 on one 32 x 224^2 clip.

    python tools/analysis_tools/benchmark_swin_cpu.py --repeats 5

Three variants hold the same random weights: r=0 (MMAction2's own forward,
what the issue's target compares against), r=320, and "r=0, STA path" (the
same weights through STA's gather/scatter forward with nothing dropped).
The last one separates what the pruning saves from what the STA path saves
by itself. After warm-up, every repetition times the variants back to back,
the order alternating between repetitions; the medians of the wall clock
and of the process CPU time (the steadier one on a shared machine) are
compared, and the script prints speed-up / FLOPs ratio (fvcore), whose
target is >= 0.80. It also prints where the r=0 time goes and what that
allows (Amdahl's law): the "ideal" speed-up scales each stage's per-token
layers by the share of tokens it keeps and assumes the pruned path costs
nothing else; the "ceiling" assumes the per-token layers vanished. The logic
is :func:`sta_mmaction.analysis.benchmark.swin_cpu_benchmark` and
:func:`~sta_mmaction.analysis.benchmark.swin_breakdown`.

``--flush-denormal`` sets ``torch.set_flush_denormal(True)`` for the whole
run, all variants alike. Stock Video Swin masks shifted windows with a
logit of -100, whose softmax weight is a subnormal float, and x86 CPUs
multiply subnormals several times slower; the STA path masks with -1e4,
whose weight is exactly zero (see ``sta_mmaction.models.swin_layers``). With
the flag, stock runs as fast as it can and the comparison is between the
algorithms.
"""
import argparse

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
from sta_mmaction.analysis.benchmark import (format_swin_cpu,
                                             swin_cpu_benchmark)
from sta_mmaction.analysis.timing import setup_cpu
from sta_mmaction.apis import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='STASwin3D-T CPU latency, r=0 against r=320')
    parser.add_argument('--drop-number', type=int, default=320)
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument(
        '--flush-denormal',
        action='store_true',
        help='flush subnormal floats to zero (both variants)')
    parser.add_argument(
        '--breakdown-repeats',
        type=int,
        default=2,
        help='r=0 forwards timed part by part (median); 0 skips it')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_cpu(args.threads, args.flush_denormal)
    result = swin_cpu_benchmark(args.arch, args.drop_number, args.warmup,
                                args.repeats, args.breakdown_repeats,
                                args.flush_denormal)
    print(format_swin_cpu(result))
    return result


if __name__ == '__main__':
    run_cli(main)
