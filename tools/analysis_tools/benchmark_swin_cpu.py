"""CPU speed-up of STASwin3D-T at r=320 over r=0 on one 32 x 224^2 clip.

    python tools/analysis_tools/benchmark_swin_cpu.py --repeats 5

Both backbones hold the same random weights (speed does not depend on
them). After warm-up, every repetition times r=0 and r=320 back to back, the
order alternating between repetitions, so that drift of the machine (clock,
other load) falls on both alike; the medians are compared. Beside the wall
clock, the process CPU time is timed too: on a shared machine it leaves out
the time the process waited for a core (with ``--threads 1`` it is the
forward's own compute time), so it is the steadier of the two there. The
FLOPs ratio comes from fvcore (:func:`sta_mmaction.analysis.backbone_report`)
on the same clip shape, and the script prints speed-up / FLOPs ratio, whose
target is >= 0.80.
"""
import argparse
import os.path as osp
import platform
import statistics
import sys
import time

try:
    import sta_mmaction  # noqa: F401
except ImportError:
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import sta_mmaction  # noqa: F401

import torch
from tabulate import tabulate

from sta_mmaction.analysis import backbone_report
from sta_mmaction.models import STASwin3D

SHAPE = (1, 3, 32, 224, 224)


def parse_args():
    parser = argparse.ArgumentParser(
        description='STASwin3D-T CPU latency, r=0 against r=320')
    parser.add_argument('--drop-number', type=int, default=320)
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f'--repeats={args.repeats} must be >= 1 and '
                         f'--warmup={args.warmup} >= 0.')
    return args


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def time_once(model, clip) -> tuple:
    """Wall-clock and process CPU seconds of one forward."""
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model(clip)
    return time.perf_counter() - start, time.process_time() - cpu


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {}
    for r in (0, args.drop_number):
        models[r] = STASwin3D(
            arch=args.arch, pretrained2d=False, drop_number=r).eval()
    models[args.drop_number].load_state_dict(models[0].state_dict())
    clip = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))

    hardware = (f'{cpu_name()}, {torch.get_num_threads()} torch threads, '
                f'torch {torch.__version__}')
    print(f'STASwin3D-{args.arch} on one {SHAPE} clip, {hardware}')
    for _ in range(args.warmup):
        for model in models.values():
            time_once(model, clip)
    wall = {r: [] for r in models}
    cpu = {r: [] for r in models}
    order = list(models)
    for rep in range(args.repeats):
        for r in (order if rep % 2 == 0 else order[::-1]):
            w, c = time_once(models[r], clip)
            wall[r].append(w)
            cpu[r].append(c)
        print(f'repetition {rep + 1}/{args.repeats}: ' +
              ', '.join(f'r={r} {wall[r][-1]:.3f} s ({cpu[r][-1]:.3f} s CPU)'
                        for r in order))

    gflops = {
        r: backbone_report(m, SHAPE)['gflops']
        for r, m in models.items()
    }
    base, pruned = order
    flops_ratio = gflops[base] / gflops[pruned]
    rows = []
    for r in order:
        rows.append([
            f'r={r}', f'{gflops[r]:.2f}', f'{statistics.median(wall[r]):.3f}',
            f'{min(wall[r]):.3f}', f'{max(wall[r]):.3f}',
            f'{statistics.median(cpu[r]):.3f}'
        ])
    print(
        tabulate(
            rows,
            headers=[
                'drop_number', 'GFLOPs', 'median s', 'min s', 'max s',
                'median CPU s'
            ]))
    print(f'FLOPs ratio {flops_ratio:.3f}x [{hardware}]')
    for label, times in (('wall clock', wall), ('process CPU time', cpu)):
        speedup = statistics.median(times[base]) / statistics.median(
            times[pruned])
        print(f'{label}: speed-up {speedup:.3f}x, speed-up / FLOPs ratio '
              f'{speedup / flops_ratio:.3f} (target >= 0.80)')


if __name__ == '__main__':
    main()
