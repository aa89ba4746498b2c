"""CPU speed-up of STASwin3D-T at r=320 over r=0 on one 32 x 224^2 clip.

    python tools/analysis_tools/benchmark_swin_cpu.py --repeats 5

Three variants hold the same random weights: r=0 (MMAction2's own forward,
what the issue's target compares against), r=320, and "r=0, STA path" (the
same weights through STA's gather/scatter forward with nothing dropped).
The last one separates what the pruning saves from what the STA path saves
by itself (fewer copies than stock's pad/roll/partition, no subnormals; see
below). After warm-up, every repetition times the variants back to back, the
order alternating between repetitions, so that drift of the machine (clock,
other load) falls on all alike; the medians are compared. Beside the wall
clock, the process CPU time is timed too: on a shared machine it leaves out
the time the process waited for a core (with ``--threads 1`` it is the
forward's own compute time), so it is the steadier of the two there. The
FLOPs ratio comes from fvcore (:func:`sta_mmaction.analysis.backbone_report`)
on the same clip shape, and the script prints speed-up / FLOPs ratio, whose
target is >= 0.80.

It also prints where the r=0 time goes and what that allows (Amdahl's law).
Forward hooks time, in extra r=0 forwards, the parts that STA's design does
not shrink (the patch embedding, stage 1, and the window-attention core of
stages 2-4, which runs on full windows so that the FLOPs are the paper's)
and the per-token rest of stages 2-4 (norms, qkv, output projection, MLP,
patch merging). The "ideal" speed-up scales each stage's per-token rest by
the share of tokens it keeps and assumes the pruned path costs nothing
else; the "ceiling" assumes the per-token rest vanished altogether.

``--flush-denormal`` sets ``torch.set_flush_denormal(True)`` for the whole
run, all variants alike. Stock Video Swin masks shifted windows with a
logit of -100, whose softmax weight is a subnormal float, and x86 CPUs
multiply subnormals several times slower; the STA path masks with -1e4,
whose weight is exactly zero (see ``sta_mmaction.models.sta_swin``). With
the flag, stock runs as fast as it can and the comparison is between the
algorithms.
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from typing import Dict

try:
    import sta_mmaction  # noqa: F401
except ImportError:
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import sta_mmaction  # noqa: F401

import torch
from tabulate import tabulate

from sta_mmaction.analysis import backbone_report
from sta_mmaction.analysis.timing import hardware_name, setup_cpu
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
    parser.add_argument(
        '--flush-denormal',
        action='store_true',
        help='flush subnormal floats to zero (both variants)')
    parser.add_argument(
        '--breakdown-repeats',
        type=int,
        default=2,
        help='r=0 forwards timed part by part (median); 0 skips it')
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0 or args.breakdown_repeats < 0:
        raise ValueError(f'--repeats={args.repeats} must be >= 1, '
                         f'--warmup={args.warmup} >= 0 and '
                         f'--breakdown-repeats={args.breakdown_repeats} '
                         '>= 0.')
    return args


def time_once(model, clip) -> tuple:
    """Wall-clock and process CPU seconds of one forward of a callable."""
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model(clip)
    return time.perf_counter() - start, time.process_time() - cpu


class PartTimer:
    """Seconds spent inside modules, by forward pre- and post-hooks.

    On the CPU every op is synchronous, so the clock read in the hooks
    brackets the module's work. Nested modules are timed separately.
    """

    def __init__(self, modules: Dict[str, torch.nn.Module]) -> None:
        self.seconds = {name: 0. for name in modules}
        self._start: Dict[str, float] = {}
        self._handles = []
        for name, module in modules.items():
            self._handles.append(
                module.register_forward_pre_hook(self._enter(name)))
            self._handles.append(module.register_forward_hook(
                self._leave(name)))

    def _enter(self, name):

        def hook(module, args):
            self._start[name] = time.perf_counter()

        return hook

    def _leave(self, name):

        def hook(module, args, output):
            self.seconds[name] += time.perf_counter() - self._start[name]

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def breakdown(model: STASwin3D, pruned: STASwin3D, clip: torch.Tensor,
              repeats: int) -> Dict[str, float]:
    """Median seconds per part of one r=0 forward, and the bounds.

    Returns:
        dict: ``total``, ``fixed`` (patch embedding, stage 1 with its patch
        merging, and the window-attention core of stages 2-4), ``per_token``
        (the rest of stages 2-4, the final norm), ``scaled`` (``per_token``
        with each stage's share weighted by the tokens ``pruned`` keeps),
        ``ideal`` and ``ceiling`` speed-ups.
    """
    modules = {'embed': model.patch_embed, 'stage1': model.layers[0]}
    for s, layer in enumerate(model.layers[1:], 2):
        modules[f'stage{s}'] = layer
        for i, blk in enumerate(layer.blocks):
            modules[f'attn{s}.{i}'] = blk.attn
            modules[f'qkv{s}.{i}'] = blk.attn.qkv
            modules[f'proj{s}.{i}'] = blk.attn.proj
    modules['norm'] = getattr(model, f'norm{model.num_layers - 1}')
    runs = []
    for _ in range(repeats):
        timer = PartTimer(modules)
        start = time.perf_counter()
        with torch.no_grad():
            model(clip)
        total = time.perf_counter() - start
        timer.remove()
        runs.append((total, timer.seconds))
    # kept share of the tokens that each stage's per-token layers see
    full = model.token_counts(tuple(clip.shape[2:]))
    kept = pruned.token_counts(tuple(clip.shape[2:]))
    parts = []
    for total, sec in runs:
        core = {
            s: sum(sec[f'attn{s}.{i}'] - sec[f'qkv{s}.{i}'] -
                   sec[f'proj{s}.{i}']
                   for i in range(len(model.layers[s - 1].blocks)))
            for s in (2, 3, 4)
        }
        fixed = sec['embed'] + sec['stage1'] + sum(core.values())
        per_token = sec['norm'] + sum(sec[f'stage{s}'] - core[s]
                                      for s in (2, 3, 4))
        scaled = sec['norm'] * kept[3] / full[3]
        for s in (2, 3, 4):
            scaled += (sec[f'stage{s}'] - core[s]) * kept[s - 1] / full[s - 1]
        parts.append(
            dict(
                total=total,
                fixed=fixed,
                per_token=per_token,
                scaled=scaled,
                other=total - fixed - per_token))
    med = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    med['ideal'] = med['total'] / (med['fixed'] + med['other'] + med['scaled'])
    med['ceiling'] = med['total'] / (med['fixed'] + med['other'])
    return med


def main():
    args = parse_args()
    setup_cpu(args.threads, args.flush_denormal)
    torch.manual_seed(0)
    base = STASwin3D(arch=args.arch, pretrained2d=False).eval()
    pruned = STASwin3D(
        arch=args.arch, pretrained2d=False,
        drop_number=args.drop_number).eval()
    pruned.load_state_dict(base.state_dict(), strict=True)
    # r=0 runs MMAction2's own forward; the same weights through STA's
    # gather/scatter path with nothing dropped tell the pruning's share of
    # the speed-up from the path's own (copies, masks, subnormals).
    variants = {
        'r=0': base,
        f'r={args.drop_number}': pruned,
        'r=0, STA path': lambda x: base.forward_pruned(x)[0],
    }
    names = list(variants)
    clip = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))

    hardware = (f'{hardware_name(torch.device("cpu"))}, '
                f'torch {torch.__version__}, subnormals '
                f'{"flushed" if args.flush_denormal else "kept"}')
    print(f'STASwin3D-{args.arch} on one {SHAPE} clip, {hardware}')
    for _ in range(args.warmup):
        for model in variants.values():
            time_once(model, clip)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for rep in range(args.repeats):
        for n in (names if rep % 2 == 0 else names[::-1]):
            w, c = time_once(variants[n], clip)
            wall[n].append(w)
            cpu[n].append(c)
        print(f'repetition {rep + 1}/{args.repeats}: ' +
              ', '.join(f'{n} {wall[n][-1]:.3f} s ({cpu[n][-1]:.3f} s CPU)'
                        for n in names))

    gflops = {
        n: backbone_report(m, SHAPE)['gflops']
        for n, m in (('r=0', base), (names[1], pruned))
    }
    gflops[names[2]] = gflops['r=0']
    flops_ratio = gflops['r=0'] / gflops[names[1]]
    rows = []
    for n in names:
        rows.append([
            n, f'{gflops[n]:.2f}', f'{statistics.median(wall[n]):.3f}',
            f'{min(wall[n]):.3f}', f'{max(wall[n]):.3f}',
            f'{statistics.median(cpu[n]):.3f}'
        ])
    print(
        tabulate(
            rows,
            headers=[
                'variant', 'GFLOPs', 'median s', 'min s', 'max s',
                'median CPU s'
            ]))
    print(f'FLOPs ratio {flops_ratio:.3f}x [{hardware}]')
    for label, times in (('wall clock', wall), ('process CPU time', cpu)):
        for ref in (names[0], names[2]):
            speedup = statistics.median(times[ref]) / statistics.median(
                times[names[1]])
            print(f'{label}: {names[1]} over {ref}: speed-up '
                  f'{speedup:.3f}x, / FLOPs ratio '
                  f'{speedup / flops_ratio:.3f} (target >= 0.80)')
    if args.breakdown_repeats:
        part = breakdown(base, pruned, clip, args.breakdown_repeats)
        total = part['total']
        print(f'r=0 forward, {total:.3f} s: patch embedding + stage 1 + '
              f'window-attention core of stages 2-4 {part["fixed"]:.3f} s '
              f'({part["fixed"] / total:.0%}), per-token layers of stages '
              f'2-4 {part["per_token"]:.3f} s '
              f'({part["per_token"] / total:.0%}), other '
              f'{part["other"]:.3f} s')
        print(f'Amdahl at r={args.drop_number}: ideal speed-up '
              f'{part["ideal"]:.3f}x (per-token layers scaled by kept '
              'tokens, no overhead), '
              f'ceiling {part["ceiling"]:.3f}x (per-token layers free); '
              f'the target needs {0.8 * flops_ratio:.3f}x')


if __name__ == '__main__':
    main()
