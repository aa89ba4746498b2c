"""Speed benchmarks: a config's backbone over r, and STASwin3D on the CPU.

:func:`benchmark_config` times every drop number of a config (each a copy of
the same random weights, pruned as its test run would be) and, if asked,
MMAction2's stock backbone; :func:`swin_cpu_benchmark` compares STASwin3D at
r=0 (the stock forward), pruned, and at r=0 through STA's own path, and
:func:`swin_breakdown` splits the r=0 time into what pruning can and cannot
shrink (Amdahl's law). Timing is :mod:`.timing`'s, interleaved.
"""
import copy
import json
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist

from ..models import STASwin3D
from .flops import backbone_report, view_shape
from .sweep import build_backbone, drop_numbers_of, prune_to, stock_copy
from .table import format_table
from .timing import (PartTimer, autocast, hardware_name, interleaved_times,
                     sync, time_once)

#: The clip of :func:`swin_cpu_benchmark`: 32 frames of 224^2.
SWIN_SHAPE = (1, 3, 32, 224, 224)


def peak_memory_mb(model: torch.nn.Module,
                   clip: torch.Tensor,
                   amp: Optional[str] = None) -> float:
    """Peak memory held by one forward above its starting point, in MiB.

    On CUDA from the allocator's peak counter, on the CPU from the
    profiler's allocation events.
    """
    device = clip.device
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
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def build_variants(cfg: Config, drop_numbers: Optional[Sequence[int]],
                   stock: bool, device: torch.device) -> List[tuple]:
    """(label, drop_number, model) with identical weights throughout.

    The config's backbone is built once; each drop number gets a copy
    converted in place, as its test run would be (an STA backbone, or a
    stock one with the config's ``STAPruningHook``; see :mod:`.sweep`).
    """
    base = build_backbone(cfg)
    variants = []
    for r in drop_numbers_of(cfg, drop_numbers):
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


def plot_speedup(rows: List[Dict], path: str, title: str) -> str:
    """Save speed-up and GFLOPs ratio against r as a PNG; returns ``path``."""
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
    return path


def benchmark_config(cfg: Config,
                     drop_numbers: Optional[Sequence[int]] = None,
                     stock: bool = False,
                     device: str = 'cpu',
                     batch_size: int = 1,
                     warmup: int = 2,
                     repeats: int = 5,
                     amp: Optional[str] = None) -> Dict:
    """Throughput, latency and peak memory of a config's backbone over r.

    Args:
        cfg (Config): A test config.
        drop_numbers (Sequence[int], optional): r to time. Defaults to None,
            the config's own.
        stock (bool): Also time MMAction2's stock backbone (same weights).
            Defaults to False.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        batch_size (int): Clips per forward. Defaults to 1.
        warmup (int): Discarded runs of each variant. Defaults to 2.
        repeats (int): Timed runs of each variant. Defaults to 5.
        amp (str, optional): ``'fp16'`` or ``'bf16'`` autocast. Defaults to
            None.

    Returns:
        dict: ``shape`` (of one view), ``hardware`` and ``rows``, one per
        variant; speed-ups and GFLOPs ratios are against the first.
    """
    for r in drop_numbers or ():
        if r < 0:
            raise ValueError(f'--drop-numbers holds {r}; drop numbers must '
                             'be >= 0.')
    if batch_size < 1:
        raise ValueError(f'--batch-size={batch_size} must be >= 1.')
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device={device} but CUDA is not available; use '
                         '--device cpu.')
    device = torch.device(device)
    shape = view_shape(cfg)
    torch.manual_seed(0)
    clip = torch.randn((batch_size, ) + tuple(shape[1:]), device=device)
    variants = build_variants(cfg, drop_numbers, stock, device)
    gflops = {
        label: backbone_report(model, shape)['gflops']
        for label, _, model in variants
    }
    print_log(
        f'warm-up: {warmup} runs each of {len(variants)} variants',
        logger='current')
    times = interleaved_times({label: model
                               for label, _, model in variants}, clip, warmup,
                              repeats, amp).wall
    first = variants[0][0]
    base_t = statistics.median(times[first])
    rows = []
    for label, r, model in variants:
        t = statistics.median(times[label])
        rows.append(
            dict(
                variant=label,
                drop_number=r,
                stock=label.endswith('(stock)'),
                gflops=gflops[label],
                latency_ms=1e3 * t / batch_size,
                clips_per_s=batch_size / t,
                peak_mem_mb=peak_memory_mb(model, clip, amp),
                speedup=base_t / t,
                flops_ratio=gflops[first] / gflops[label],
                times_s=times[label]))
    return dict(shape=shape, hardware=hardware_name(device), rows=rows)


def benchmark_table(rows: List[Dict]) -> str:
    """The table of :func:`benchmark_config`'s rows."""
    return format_table([[
        row['variant'], f'{row["gflops"]:.2f}', f'{row["clips_per_s"]:.3f}',
        f'{row["latency_ms"]:.1f}', f'{row["peak_mem_mb"]:.0f}',
        f'{row["speedup"]:.2f}x', f'{row["flops_ratio"]:.2f}x'
    ] for row in rows], [
        'variant', 'GFLOPs', 'clips/s', 'ms/clip', 'peak MiB', 'speed-up',
        'GFLOPs ratio'
    ])


def write_benchmark(result: Dict, out_dir: str, stem: str, title: str,
                    json_path: Optional[str] = None, **settings) -> tuple:
    """Write :func:`benchmark_config`'s result as JSON and a PNG plot.

    Args:
        result (dict): :func:`benchmark_config`'s result.
        out_dir (str): Folder of the files.
        stem (str): File name stem.
        title (str): Title of the plot.
        json_path (str, optional): JSON path. Defaults to None,
            ``out_dir/<stem>.json``.
        **settings: Further entries of the JSON (config, amp, ...).

    Returns:
        tuple[str]: The JSON and the PNG paths.
    """
    mkdir_or_exist(out_dir)
    json_path = json_path or osp.join(out_dir, f'{stem}.json')
    with open(json_path, 'w') as f:
        json.dump(dict(settings, **result), f, indent=2)
    return json_path, plot_speedup(result['rows'],
                                   osp.join(out_dir, f'{stem}.png'), title)


def swin_breakdown(model, pruned, clip: torch.Tensor,
                   repeats: int) -> Dict[str, float]:
    """Median seconds per part of one r=0 STASwin3D forward, and the bounds.

    Forward hooks time, in extra r=0 forwards, the parts that STA's design
    does not shrink (the patch embedding, stage 1, and the window-attention
    core of stages 2-4, which runs on full windows so that the FLOPs are
    the paper's) and the per-token rest of stages 2-4 (norms, qkv, output
    projection, MLP, patch merging).

    Args:
        model (STASwin3D): The r=0 backbone.
        pruned (STASwin3D): The pruned one, for its kept tokens per stage.
        clip (Tensor): (N, C, T, H, W) input.
        repeats (int): Forwards timed; the median of each part is kept.

    Returns:
        dict: ``total``, ``fixed`` (patch embedding, stage 1 with its patch
        merging, and the window-attention core of stages 2-4), ``per_token``
        (the rest of stages 2-4, the final norm), ``scaled`` (``per_token``
        with each stage's share weighted by the tokens ``pruned`` keeps),
        ``other``, and the ``ideal`` (the pruned path costs nothing else)
        and ``ceiling`` (the per-token rest vanished) speed-ups.
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
        with PartTimer(modules) as timer:
            total, _ = time_once(model, clip)
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


def swin_cpu_benchmark(arch: str = 'tiny',
                       drop_number: int = 320,
                       warmup: int = 1,
                       repeats: int = 5,
                       breakdown_repeats: int = 2,
                       flush_denormal: bool = False,
                       shape: Sequence[int] = SWIN_SHAPE) -> Dict:
    """CPU latency of STASwin3D at r=0, at ``drop_number`` and on STA's path.

    Three variants hold the same random weights: r=0 (MMAction2's own
    forward), r=``drop_number``, and "r=0, STA path" (the same weights
    through STA's gather/scatter forward with nothing dropped), which tells
    the pruning's share of the speed-up from the path's own (fewer copies
    than stock's pad/roll/partition, no subnormals). Repetitions alternate
    their order.

    Args:
        arch (str): Swin size. Defaults to ``'tiny'``.
        drop_number (int): The pruned r. Defaults to 320.
        warmup (int): Discarded runs of each variant. Defaults to 1.
        repeats (int): Timed runs of each variant. Defaults to 5.
        breakdown_repeats (int): r=0 forwards timed part by part
            (:func:`swin_breakdown`); 0 skips it. Defaults to 2.
        flush_denormal (bool): Whether the caller flushed subnormal floats,
            for the record. Defaults to False.
        shape (Sequence[int]): The clip's shape. Defaults to
            :data:`SWIN_SHAPE`.

    Returns:
        dict: ``names`` (the variants), ``wall`` and ``cpu`` seconds,
        ``gflops``, ``flops_ratio``, ``hardware`` and ``breakdown`` (None
        when skipped).
    """
    if repeats < 1 or warmup < 0 or breakdown_repeats < 0:
        raise ValueError(f'--repeats={repeats} must be >= 1, --warmup='
                         f'{warmup} >= 0 and --breakdown-repeats='
                         f'{breakdown_repeats} >= 0.')
    torch.manual_seed(0)
    base = STASwin3D(arch=arch, pretrained2d=False).eval()
    pruned = STASwin3D(
        arch=arch, pretrained2d=False, drop_number=drop_number).eval()
    pruned.load_state_dict(base.state_dict(), strict=True)
    variants = {
        'r=0': base,
        f'r={drop_number}': pruned,
        'r=0, STA path': lambda x: base.forward_pruned(x)[0],
    }
    names = list(variants)
    clip = torch.randn(
        tuple(shape), generator=torch.Generator().manual_seed(0))
    hardware = (f'{hardware_name(torch.device("cpu"))}, torch '
                f'{torch.__version__}, subnormals '
                f'{"flushed" if flush_denormal else "kept"}')
    print_log(
        f'STASwin3D-{arch} on one {tuple(shape)} clip, {hardware}',
        logger='current')
    times = interleaved_times(
        variants, clip, warmup, repeats, alternate=True)
    gflops = {
        n: backbone_report(m, tuple(shape))['gflops']
        for n, m in ((names[0], base), (names[1], pruned))
    }
    gflops[names[2]] = gflops[names[0]]
    return dict(
        arch=arch,
        drop_number=drop_number,
        shape=list(shape),
        names=names,
        wall=times.wall,
        cpu=times.cpu,
        gflops=gflops,
        flops_ratio=gflops[names[0]] / gflops[names[1]],
        hardware=hardware,
        breakdown=swin_breakdown(base, pruned, clip, breakdown_repeats)
        if breakdown_repeats else None)


def format_swin_cpu(result: Dict) -> str:
    """The printout of :func:`swin_cpu_benchmark`'s result."""
    names, wall, cpu = result['names'], result['wall'], result['cpu']
    med = statistics.median
    lines = [
        format_table([[
            n, f'{result["gflops"][n]:.2f}', f'{med(wall[n]):.3f}',
            f'{min(wall[n]):.3f}', f'{max(wall[n]):.3f}', f'{med(cpu[n]):.3f}'
        ] for n in names], [
            'variant', 'GFLOPs', 'median s', 'min s', 'max s', 'median CPU s'
        ]), f'FLOPs ratio {result["flops_ratio"]:.3f}x [{result["hardware"]}]'
    ]
    ratio = result['flops_ratio']
    for label, times in (('wall clock', wall), ('process CPU time', cpu)):
        for ref in (names[0], names[2]):
            speedup = med(times[ref]) / med(times[names[1]])
            lines.append(f'{label}: {names[1]} over {ref}: speed-up '
                         f'{speedup:.3f}x, / FLOPs ratio '
                         f'{speedup / ratio:.3f} (target >= 0.80)')
    part = result['breakdown']
    if part:
        total = part['total']
        lines.append(
            f'r=0 forward, {total:.3f} s: patch embedding + stage 1 + '
            f'window-attention core of stages 2-4 {part["fixed"]:.3f} s '
            f'({part["fixed"] / total:.0%}), per-token layers of stages 2-4 '
            f'{part["per_token"]:.3f} s ({part["per_token"] / total:.0%}), '
            f'other {part["other"]:.3f} s')
        lines.append(
            f'Amdahl at r={result["drop_number"]}: ideal speed-up '
            f'{part["ideal"]:.3f}x (per-token layers scaled by kept tokens, '
            f'no overhead), ceiling {part["ceiling"]:.3f}x (per-token layers '
            f'free); the target needs {0.8 * ratio:.3f}x')
    return '\n'.join(lines)
