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
Speed-ups are against the first drop number.

Peak memory is the largest amount the forward holds at once above what it
started with: on CUDA from the allocator's peak counter, on CPU from the
profiler's allocation events.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys

try:
    import sta_mmaction  # noqa: F401
except ImportError:
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import sta_mmaction  # noqa: F401

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from mmaction.utils import register_all_modules
from tabulate import tabulate

from sta_mmaction.analysis import (backbone_report, build_backbone,
                                   drop_numbers_of, prune_to, stock_copy,
                                   view_shape)
from sta_mmaction.analysis.timing import (autocast, hardware_name, setup_cpu,
                                          interleaved_times, sync)

def parse_args():
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
    args = parser.parse_args()
    for r in args.drop_numbers:
        if r < 0:
            raise ValueError(f'--drop-numbers holds {r}; drop numbers must '
                             'be >= 0.')
    if args.batch_size < 1:
        raise ValueError(f'--batch-size={args.batch_size} must be >= 1.')
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f'--repeats={args.repeats} must be >= 1 and '
                         f'--warmup={args.warmup} >= 0.')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device={args.device} but CUDA is not available;'
                         ' use --device cpu.')
    return args


def peak_memory_mb(model, clip, device, amp):
    """Peak memory held by one forward above its starting point, in MiB."""
    with torch.no_grad(), autocast(device, amp):
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            model(clip)
            sync(device)
            return (torch.cuda.max_memory_allocated(device) - base) / 2**20
        with torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU],
                profile_memory=True) as prof:
            model(clip)
    live = peak = 0
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def build_variants(cfg, drop_numbers, stock, device):
    """(label, drop_number, model) with identical weights throughout.

    The config's backbone is built once; each drop number gets a copy
    converted in place, as its test run would be (an STA backbone, or a
    stock one with the config's ``STAPruningHook``; see
    :mod:`sta_mmaction.analysis.sweep`).
    """
    rs = drop_numbers_of(cfg, drop_numbers)
    base = build_backbone(cfg)
    variants = []
    for r in rs:
        model = prune_to(copy.deepcopy(base), cfg, r)
        # stock SwinTransformer3D.train() returns None: no chaining
        model.eval()
        variants.append((f'{type(model).__name__} r={r}', r, model.to(device)))
    if stock:
        model = stock_copy(base)
        model.eval()
        variants.append(
            (f'{type(model).__name__} (stock)', 0, model.to(device)))
    return variants


def plot(rows, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sta = [r for r in rows if not r['stock']]
    rs = [r['drop_number'] for r in sta]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rs, [r['speedup'] for r in sta], 'o-', label='measured speed-up')
    ax.plot(
        rs, [r['flops_ratio'] for r in sta],
        's--',
        label='GFLOPs ratio (r=first / r)')
    ax.set_xlabel('drop number r')
    ax.set_ylabel('x faster than first r')
    ax2 = ax.twinx()
    ax2.plot(rs, [r['gflops'] for r in sta], 'd:', color='gray')
    ax2.set_ylabel('GFLOPs per view (gray)')
    ax.legend(loc='upper left')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    setup_cpu(args.threads, args.flush_denormal)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    device = torch.device(args.device)
    shape = view_shape(cfg)
    torch.manual_seed(0)
    clip = torch.randn((args.batch_size, ) + shape[1:], device=device)

    variants = build_variants(cfg, args.drop_numbers, args.stock, device)
    gflops = {
        label: backbone_report(model, shape)['gflops']
        for label, _, model in variants
    }
    print_log(
        f'warm-up: {args.warmup} runs each of {len(variants)} variants',
        logger='current')
    times = interleaved_times({label: model
                               for label, _, model in variants}, clip,
                              args.warmup, args.repeats, args.amp)
    memory = {
        label: peak_memory_mb(model, clip, device, args.amp)
        for label, _, model in variants
    }

    first = variants[0][0]
    base_t = statistics.median(times[first])
    rows = []
    for label, r, _ in variants:
        t = statistics.median(times[label])
        rows.append(
            dict(
                variant=label,
                drop_number=r,
                stock=label.endswith('(stock)'),
                gflops=gflops[label],
                latency_ms=1e3 * t / args.batch_size,
                clips_per_s=args.batch_size / t,
                peak_mem_mb=memory[label],
                speedup=base_t / t,
                flops_ratio=gflops[first] / gflops[label],
                times_s=times[label]))
    hardware = hardware_name(device)
    title = (f'{osp.basename(args.config)}, batch {args.batch_size}, '
             f'view {tuple(shape[1:])}, {hardware}, amp={args.amp or "off"}, '
             f'subnormals {"flushed" if args.flush_denormal else "kept"}')
    print(title)
    print(
        tabulate([[
            row['variant'], f'{row["gflops"]:.2f}',
            f'{row["clips_per_s"]:.3f}', f'{row["latency_ms"]:.1f}',
            f'{row["peak_mem_mb"]:.0f}',
            f'{row["speedup"]:.2f}x', f'{row["flops_ratio"]:.2f}x'
        ] for row in rows],
                 headers=[
                     'variant', 'GFLOPs', 'clips/s', 'ms/clip',
                     'peak MiB', 'speed-up', 'GFLOPs ratio'
                 ],
                 tablefmt='github'))
    mkdir_or_exist(args.out_dir)
    stem = osp.splitext(osp.basename(args.config))[0]
    json_path = args.json or osp.join(args.out_dir, f'{stem}.json')
    png_path = osp.join(args.out_dir, f'{stem}.png')
    with open(json_path, 'w') as f:
        json.dump(
            dict(
                config=args.config,
                hardware=hardware,
                batch_size=args.batch_size,
                amp=args.amp,
                flush_denormal=args.flush_denormal,
                warmup=args.warmup,
                repeats=args.repeats,
                shape=shape,
                rows=rows),
            f,
            indent=2)
    plot(rows, png_path, title)
    print(f'wrote {json_path} and {png_path}')


if __name__ == '__main__':
    main()
