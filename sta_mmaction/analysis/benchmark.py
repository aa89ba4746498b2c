"""Speed benchmarks: every variant of a backbone side by side, in one run.

:func:`speed_benchmark` builds a config's backbone once and times, on one
random clip, copies with the same weights: MMAction2's stock backbone in
float32 (the reference), STA at every drop number with the explicit
attention and with ``fused_attention=True``, the oracle of each pruned one
(a copy with ``strategy='oracle'``: the same blocks on STA's token counts,
each group keeping its first tokens, no scoring; see :func:`oracle_twin`),
for Video Swin STA's path at r=0 (its gather/scatter
forward with nothing dropped), and, if asked, the same under ``amp``
autocast and ``torch.compile``-d fused STA. After warm-up the repetitions
are interleaved across all variants, their order reversing every other
repetition (:func:`~.timing.interleaved_times`), and the medians are kept.

Each row: ms per clip on the wall clock and in process CPU time, clips/s,
peak forward memory (:func:`peak_memory_mb`), speed-up against the stock
backbone in float32 and against the best unpruned variant (the fastest r=0
row), and STA's time over its oracle's. With one torch thread on the CPU the
speed-ups are taken on the process CPU time, which is the forward's own
compute and leaves out the time a loaded machine kept the process waiting
for a core; otherwise (threads, GPU) on the wall clock. :func:`speed_targets`
checks the issue's targets on the rows, and :func:`swin_breakdown` splits an
r=0 Video Swin forward into what pruning can and cannot shrink (Amdahl's
law), for either attention path.
"""
import copy
import json
import os
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist

from ..models import (STA_VERSIONS, STASwin3D, apply_pruning,
                      convert_backbone, pruning_of, sta_swin, swin_layers)
from .flops import backbone_report, view_shape
from .sweep import build_backbone, drop_numbers_of, stock_copy
from .table import format_table
from .timing import (CallTimer, PartTimer, autocast, hardware_name,
                     interleaved_times, setup_cpu, sync, time_once,
                     with_autocast)

#: ``--model`` names -> our r=0 test configs, in the checkout's configs/.
MODEL_CONFIGS = {
    'vit-s': 'sta_vits_k400_r0.py',
    'vit-b': 'sta_vitb_k400_r0.py',
    'vit-l': 'sta_vitl_k400_r0.py',
    'vit-h': 'sta_vith_k400_r0.py',
    'swin-t': 'sta_swint_k400_r0.py',
    'swin-s': 'sta_swins_k400_r0.py',
    'swin-b': 'sta_swinb_k400_r0.py',
}

#: Drop numbers timed when none are given, by STA class: the paper's.
DEFAULT_DROP_NUMBERS = {'STAViT': (0, 32, 48, 64), 'STASwin3D': (0, 320)}

#: ``tiny=True``: backbone overrides, clip (T, H, W) and drop numbers of a
#: seconds-long run of the whole benchmark (tests, dry runs).
TINY = {
    'STAViT': (dict(
        img_size=64, embed_dims=64, depth=3, num_heads=4,
        num_frames=16), (16, 64, 64), (0, 2, 4)),
    'STASwin3D': (dict(
        arch=dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
        window_size=(2, 4, 4),
        drop_path_rate=0.), (8, 64, 64), (0, 16)),
}

#: The drop number the issue's ViT targets name.
TARGET_R = 64

#: ``clock`` of :func:`speed_benchmark` -> its name in the printout.
CLOCKS = {'cpu': 'process CPU time', 'wall': 'wall clock'}


def model_config(model: Optional[str] = None,
                 config: Optional[str] = None,
                 config_dir: str = 'configs') -> str:
    """The config file of ``--model`` or the given ``config``.

    Args:
        model (str, optional): A :data:`MODEL_CONFIGS` name. Defaults to
            None.
        config (str, optional): A config path. Defaults to None.
        config_dir (str): Where :data:`MODEL_CONFIGS` live. Defaults to
            ``'configs'``.
    """
    if (model is None) == (config is None):
        raise ValueError(f'give a config or --model, not both or neither '
                         f'(config={config!r}, --model={model!r}); models: '
                         f'{sorted(MODEL_CONFIGS)}.')
    if config is not None:
        return config
    if model not in MODEL_CONFIGS:
        raise ValueError(f'--model={model!r} is not known; choose one of '
                         f'{sorted(MODEL_CONFIGS)} or pass a config file.')
    return osp.join(config_dir, MODEL_CONFIGS[model])


def sta_class(cfg: Config) -> type:
    """The STA class (``STAViT``, ``STASwin3D``) of the config's backbone,
    read from the registry without building it."""
    kind = cfg.model.backbone.get('type')
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if cls in STA_VERSIONS:
        return STA_VERSIONS[cls]
    if cls in STA_VERSIONS.values():
        return cls
    allowed = sorted(c.__name__ for pair in STA_VERSIONS.items() for c in pair)
    raise ValueError(f'model.backbone.type={kind!r}: the benchmark times '
                     f'STA and stock backbones of the types {allowed}.')


def peak_memory_mb(model: Callable, clip: torch.Tensor) -> float:
    """Peak memory held by one forward above its starting point, in MiB.

    On CUDA from the allocator's peak counter
    (``torch.cuda.max_memory_allocated``), on the CPU from the allocation
    and free events of ``torch.profiler`` with ``profile_memory=True``,
    summed in time order: the largest total of tensor memory alive at once.
    Both count tensors only (not the allocator's cache or Python objects).

    Args:
        model (Callable): A module or callable of the clip (wrap it in
            :func:`~.timing.with_autocast` for mixed precision).
        clip (Tensor): Its input.
    """
    device = clip.device
    with torch.no_grad():
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

    Args:
        cfg (Config): The config.
        drop_numbers (Sequence[int], optional): See
            :func:`~.sweep.drop_numbers_of`.
        stock (bool): Append MMAction2's stock backbone (label ending in
            ``(stock)``, drop number 0).
        device (torch.device): Where the models go.
    """
    base = build_backbone(cfg)
    pruning = pruning_of(cfg)
    variants = []
    for r in drop_numbers_of(cfg, drop_numbers):
        model = apply_pruning(copy.deepcopy(base), pruning, r)
        # stock SwinTransformer3D.train() returns None: no chaining
        model.eval()
        variants.append((f'{type(model).__name__} r={r}', r, model.to(device)))
    if stock:
        model = stock_copy(base)
        model.eval()
        variants.append(
            (f'{type(model).__name__} (stock)', 0, model.to(device)))
    return variants


def compile_forward(model: torch.nn.Module) -> Callable:
    """``torch.compile(model)``, or a ``ValueError`` where it cannot run.

    STASwin3D's kept-token windows (pruned, or fused attention at r=0) scatter
    into the windowed layout, which inductor in torch 2.13 cannot lower (see
    ``tools/test.py --compile``).
    """
    if isinstance(model, STASwin3D) and (model.drop_number
                                         or model.fused_attention):
        raise ValueError(
            f'--compile with STASwin3D at drop_number={model.drop_number}, '
            f'fused_attention={model.fused_attention}: torch 2.13\'s inductor '
            'cannot compile the scatter that builds its kept-token windows; '
            'run the Swin variants without --compile.')
    return torch.compile(model)


def oracle_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of an STA backbone with ``strategy='oracle'``, same weights.

    Its own forward runs the same blocks on the same token counts, every
    group keeping its first tokens (:func:`sta_mmaction.core.first_select`),
    so STA's time over the twin's is the price of STA's selection. A model
    without an oracle is refused here, before any clip is timed.

    Args:
        model (STAViT or STASwin3D): A pruned STA backbone.

    Returns:
        nn.Module: The copy, with the model's other settings, mode and
        device.
    """
    if not isinstance(model, tuple(STA_VERSIONS.values())):
        raise ValueError(f'no oracle for a {type(model).__name__}; the '
                         "oracle is the strategy='oracle' of an STA "
                         'backbone.')
    if model.strategy == 'tome' and model.drop_number:
        raise ValueError("strategy='tome' merges tokens rather than "
                         'selecting them, so it has no oracle (each group '
                         'keeping its first tokens); use a selecting '
                         'strategy (e.g. the default sta).')
    if isinstance(model, STASwin3D) and not model.drop_number:
        raise ValueError('STASwin3D at drop_number=0 prunes nothing, so its '
                         'oracle is the unpruned forward; time that.')
    return convert_backbone(
        copy.deepcopy(model), model.drop_number, strategy='oracle')


def _variant(label: str,
             kind: str,
             r: int,
             attention: str,
             amp: Optional[str],
             forward: Optional[Callable],
             compiled: bool = False,
             note: str = '') -> Dict:
    """One variant record; ``forward`` None marks it not supported."""
    return dict(
        variant=label,
        kind=kind,
        drop_number=r,
        attention=attention,
        precision=amp or 'fp32',
        compiled=compiled,
        forward=forward,
        note=note)


def speed_variants(stock: torch.nn.Module,
                   sta: Dict[Tuple[int, str], torch.nn.Module],
                   device: torch.device,
                   amp: Optional[str] = None,
                   amp_only: bool = False,
                   compile: bool = False) -> List[Dict]:
    """The variants to time, each with its forward (None: not supported).

    Args:
        stock (nn.Module): MMAction2's stock backbone.
        sta (dict): ``(r, 'explicit' or 'fused')`` -> the STA backbone.
        device (torch.device): Where they run.
        amp (str, optional): Also run every variant under this autocast.
            Defaults to None.
        amp_only (bool): Run STA, oracle and STA-path variants under
            ``amp`` only (the stock backbone keeps its float32 row).
            Defaults to False.
        compile (bool): Add ``torch.compile``-d fused STA at every r, under
            ``amp`` when given. Defaults to False.

    Returns:
        list[dict]: Variant records (see :func:`speed_benchmark`'s rows),
        with ``forward``; ``stock`` in float32 comes first.
    """
    rs = sorted({r for r, _ in sta})
    oracles = {}  # one twin per model, timed at every precision
    for key, model in sta.items():
        if key[0]:
            try:
                oracles[key] = oracle_twin(model), ''
            except ValueError as err:  # ToMe merges: nothing to select
                oracles[key] = None, f'not supported: {err}'
    out = [_variant('stock', 'stock', 0, 'explicit', None, stock)]
    for prec in [amp] if amp_only else [None] + ([amp] if amp else []):
        tag = f' {prec}' if prec else ''

        def wrap(forward, p=prec):
            return with_autocast(forward, device, p)

        if prec:
            out.append(
                _variant(f'stock{tag}', 'stock', 0, 'explicit', prec,
                         wrap(stock)))
        for attention in ('explicit', 'fused'):
            for r in rs:
                out.append(
                    _variant(f'STA {attention} r={r}{tag}', 'sta', r,
                             attention, prec, wrap(sta[r, attention])))
            for r in rs:
                if not r:
                    continue
                twin, note = oracles[r, attention]
                forward = None if twin is None else wrap(twin)
                out.append(
                    _variant(f'oracle {attention} r={r}{tag}', 'oracle', r,
                             attention, prec, forward, note=note))
        if 0 in rs and isinstance(sta[0, 'explicit'], STASwin3D):
            path = sta[0, 'explicit']
            out.append(
                _variant(f'STA path explicit r=0{tag}', 'sta-path', 0,
                         'explicit', prec,
                         wrap(lambda x, m=path: m.forward_pruned(x)[0])))
    if compile:
        tag = f' {amp}' if amp else ''
        for r in rs:
            try:
                forward = with_autocast(
                    compile_forward(sta[r, 'fused']), device, amp)
                note = ''
            except ValueError:
                forward = None
                note = ('not supported: inductor cannot lower the kept-token '
                        'windows')
            out.append(
                _variant(f'STA fused r={r}{tag} compiled', 'sta', r, 'fused',
                         amp, forward, True, note))
    return out


def _rows(variants: List[Dict], wall: Dict[str, float], cpu: Dict[str, float],
          clock: str, gflops: Dict[int, float], memory: Dict[str, float],
          batch_size: int) -> List[Dict]:
    """The rows of :func:`speed_benchmark` from the median seconds; the
    speed-ups are taken on ``clock`` (``'wall'`` or ``'cpu'``)."""
    t = cpu if clock == 'cpu' else wall
    ref = t['stock']
    best = min(t[v['variant']] for v in variants
               if v['forward'] is not None and v['drop_number'] == 0)
    oracle = {(v['drop_number'], v['attention'], v['precision']): v['variant']
              for v in variants
              if v['kind'] == 'oracle' and v['forward'] is not None}
    base_flops = gflops[0] if 0 in gflops else gflops[min(gflops)]
    rows = []
    for v in variants:
        row = {k: val for k, val in v.items() if k != 'forward'}
        r = v['drop_number']
        row.update(
            supported=v['forward'] is not None,
            gflops=gflops[r],
            flops_ratio=base_flops / gflops[r])
        if v['forward'] is None:
            rows.append(row)
            continue
        label = v['variant']
        twin = oracle.get((r, v['attention'], v['precision']))
        if v['kind'] != 'sta' or v['compiled']:
            twin = None
        row.update(
            latency_ms=1e3 * wall[label] / batch_size,
            cpu_ms=1e3 * cpu[label] / batch_size,
            clips_per_s=batch_size / t[label],
            peak_mem_mb=memory[label],
            speedup_vs_stock=ref / t[label],
            speedup_vs_best_unpruned=best / t[label],
            oracle=twin,
            oracle_ratio=None if twin is None else t[label] / t[twin])
        rows.append(row)
    return rows


def speed_benchmark(cfg: Config,
                    drop_numbers: Optional[Sequence[int]] = None,
                    device: str = 'cpu',
                    batch_size: int = 1,
                    warmup: int = 2,
                    repeats: int = 5,
                    amp: Optional[str] = None,
                    amp_only: bool = False,
                    compile: bool = False,
                    clip_shape: Optional[Sequence[int]] = None,
                    breakdown_repeats: Optional[int] = None) -> Dict:
    """Time every variant of a config's backbone side by side.

    Args:
        cfg (Config): A test config with an STA backbone, or a stock one
            pruned by an ``STAPruningHook``.
        drop_numbers (Sequence[int], optional): r to time. Defaults to None,
            :data:`DEFAULT_DROP_NUMBERS` of the backbone.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        batch_size (int): Clips per forward. Defaults to 1.
        warmup (int): Discarded runs of each variant. Defaults to 2.
        repeats (int): Timed runs of each variant. Defaults to 5.
        amp (str, optional): ``'bf16'`` or ``'fp16'``: every variant also
            runs under this autocast. Defaults to None.
        amp_only (bool): With ``amp``, STA and oracle variants run under
            ``amp`` only. Defaults to False.
        compile (bool): Add compiled fused STA rows ("not supported" rows
            where :func:`compile_forward` refuses). Defaults to False.
        clip_shape (Sequence[int], optional): ``(T, H, W)`` of the clip.
            Defaults to None, the config's test view.
        breakdown_repeats (int, optional): Video Swin only: r=0 forwards
            timed part by part per attention path (:func:`swin_breakdown`),
            CPU only; 0 skips it. Defaults to None: 2 for Swin on the CPU,
            else 0.

    Returns:
        dict: ``backbone``, ``shape`` (of the batch), ``batch_size``,
        ``drop_numbers``, ``warmup``, ``repeats``, ``hardware``, ``load``
        (1-minute load average before and after the timing), ``clock``
        (what the speed-ups are taken on: ``'cpu'``, the process CPU time,
        when one torch thread runs on the CPU, else ``'wall'``), ``rows``
        (``variant``, ``kind``, ``drop_number``, ``attention``,
        ``precision``, ``compiled``, ``supported``, ``note``, ``gflops``,
        ``flops_ratio`` and, when supported, ``latency_ms`` (wall clock),
        ``cpu_ms``, ``clips_per_s``, ``peak_mem_mb``, ``speedup_vs_stock``,
        ``speedup_vs_best_unpruned``, ``oracle`` (the label of the STA
        row's oracle), ``oracle_ratio``, ``times_s``, ``cpu_s``; medians,
        per clip, speed-ups on ``clock``), ``targets``
        (:func:`speed_targets`) and ``breakdown``.
    """
    for name, value, low in (('--batch-size', batch_size, 1),
                             ('--repeats', repeats, 1), ('--warmup', warmup,
                                                         0)):
        if value < low:
            raise ValueError(f'{name}={value} must be >= {low}.')
    if amp_only and amp is None:
        raise ValueError('--amp-only needs --amp bf16 or --amp fp16.')
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device={device} but CUDA is not available; use '
                         '--device cpu.')
    device = torch.device(device)
    autocast(device, amp)  # a bad --amp fails before anything is built
    kind = sta_class(cfg)
    swin = kind is STASwin3D
    if drop_numbers is None:
        drop_numbers = DEFAULT_DROP_NUMBERS[kind.__name__]
    drop_numbers = sorted(set(drop_numbers))
    if breakdown_repeats is None:
        breakdown_repeats = 2 if swin and device.type == 'cpu' else 0
    if breakdown_repeats < 0 or (breakdown_repeats and
                                 (not swin or device.type != 'cpu')):
        raise ValueError(
            f'--breakdown-repeats={breakdown_repeats}: the breakdown times '
            'Video Swin parts with hooks, which read the clock without '
            'synchronising a GPU; use it >= 0, with a Swin model on --device '
            'cpu (0 skips it).')
    view = view_shape(cfg)
    shape = (batch_size, view[1]) + tuple(clip_shape or view[2:])
    built = build_variants(cfg, drop_numbers, True, device)
    sta = {}
    for _, r, model in built[:-1]:
        if r and swin:
            model.token_schedule(shape)  # a ValueError if r is too large
        sta[r, 'explicit'] = convert_backbone(model, r, fused_attention=False)
        sta[r, 'fused'] = convert_backbone(
            copy.deepcopy(model), r, fused_attention=True)
    variants = speed_variants(built[-1][2], sta, device, amp, amp_only,
                              compile)
    gflops = {
        r: backbone_report(sta[r, 'explicit'], (1, ) + shape[1:])['gflops']
        for r in drop_numbers
    }
    torch.manual_seed(0)
    clip = torch.randn(shape, device=device)
    timed = {v['variant']: v['forward'] for v in variants if v['forward']}
    with torch.no_grad():
        for v in variants:
            if v['compiled'] and v['forward'] is not None:
                v['forward'](clip)  # compile before the warm-up
    print_log(
        f'{kind.__name__}, clip {shape}: {len(timed)} variants, {warmup} '
        f'warm-up and {repeats} timed forwards each, interleaved',
        logger='current')
    load = [os.getloadavg()[0]]
    times = interleaved_times(timed, clip, warmup, repeats, alternate=True)
    load.append(os.getloadavg()[0])
    # inductor's CPU kernels allocate their buffers past the profiler, so a
    # compiled forward's memory cannot be read there
    memory = {
        v['variant']: None if v['compiled'] and device.type == 'cpu' else
        peak_memory_mb(v['forward'], clip)
        for v in variants if v['forward']
    }
    wall = {label: statistics.median(t) for label, t in times.wall.items()}
    cpu = {label: statistics.median(t) for label, t in times.cpu.items()}
    # one thread on the CPU: the process CPU time is the forward's own
    # compute, without the time a loaded machine made it wait for a core
    clock = 'cpu' if device.type == 'cpu' and torch.get_num_threads(
    ) == 1 else 'wall'
    rows = _rows(variants, wall, cpu, clock, gflops, memory, batch_size)
    for row in rows:
        if row['supported']:
            row.update(
                times_s=times.wall[row['variant']],
                cpu_s=times.cpu[row['variant']])
    breakdown = {}
    if breakdown_repeats and drop_numbers[-1] and drop_numbers[0] == 0:
        for attention in ('explicit', 'fused'):
            breakdown[attention] = swin_breakdown(
                sta[0, attention], sta[drop_numbers[-1], attention], clip,
                breakdown_repeats, clock)
    result = dict(
        backbone=kind.__name__,
        shape=list(shape),
        batch_size=batch_size,
        drop_numbers=drop_numbers,
        warmup=warmup,
        repeats=repeats,
        hardware=f'{hardware_name(device)}, torch {torch.__version__}',
        load=load,
        clock=clock,
        rows=rows,
        breakdown=breakdown or None)
    result['targets'] = speed_targets(result)
    return result


def _row(rows: List[Dict], **match) -> Optional[Dict]:
    """The first supported, uncompiled row with these fields."""
    for row in rows:
        if row['supported'] and not row['compiled'] and all(
                row[k] == v for k, v in match.items()):
            return row
    return None


def _target(name: str, values: Tuple[Optional[float], Optional[float]],
            clock: str, wanted: str,
            ok: Optional[Callable[[float], bool]]) -> Dict:
    """A target record, judged on ``clock``'s value of ``(wall, cpu)``."""
    wall, cpu = values
    value = cpu if clock == 'cpu' else wall
    return dict(
        check=name,
        value=value,
        value_wall=wall,
        value_cpu=cpu,
        clock=clock,
        target=wanted,
        passed=None if value is None or ok is None else bool(ok(value)))


def speed_targets(result: Dict) -> List[Dict]:
    """The issue's targets, checked on :func:`speed_benchmark`'s rows.

    ViT: STA at r=64 (else the largest r) within 3% of its oracle, with
    each attention path; fused r=64 under bf16 at least 7x the stock
    float32 backbone (the issue sets it for ViT-S); fused r=64 over fused
    r=0 at least the GFLOPs ratio; fused r=0 peak memory at most a quarter
    of explicit r=0's. Swin: the fused speed-up at the largest r over fused
    r=0, beside the GFLOPs ratio and the Amdahl bound (no fixed target).
    Rows run in float32 are used, else (``amp_only``) those under the amp.
    Every ratio is given on the wall clock and on the process CPU time and
    judged on ``result['clock']``.

    Returns:
        list[dict]: ``check``, ``value`` (the judged one), ``value_wall``
        and ``value_cpu`` (numbers, or None when the run has no such rows),
        ``clock``, ``target`` (text) and ``passed`` (bool, or None when it
        cannot be checked or has no fixed target).
    """
    rows, clock = result['rows'], result['clock']
    rs = sorted({row['drop_number'] for row in rows if row['kind'] == 'sta'})
    pruned = [r for r in rs if r]
    if not pruned or 0 not in rs:
        return []
    r = TARGET_R if TARGET_R in pruned else pruned[-1]
    precs = {row['precision'] for row in rows if row['kind'] == 'sta'}
    prec = 'fp32' if 'fp32' in precs else sorted(precs)[0]

    def ratio(slow: Optional[Dict], fast: Optional[Dict]):
        if slow is None or fast is None:
            return None, None
        return (slow['latency_ms'] / fast['latency_ms'],
                slow['cpu_ms'] / fast['cpu_ms'])

    fused0 = _row(
        rows, kind='sta', drop_number=0, attention='fused', precision=prec)
    fusedr = _row(
        rows, kind='sta', drop_number=r, attention='fused', precision=prec)
    flops = fusedr['flops_ratio']
    gain = f'fused r={r} over fused r=0 ({prec})'
    if result['backbone'] == 'STASwin3D':
        part = (result.get('breakdown') or {}).get('fused')
        bound = '' if part is None else (
            f'; Amdahl ideal {part["ideal"]:.2f}x, ceiling '
            f'{part["ceiling"]:.2f}x')
        return [
            _target(gain, ratio(fused0, fusedr), clock,
                    f'report (GFLOPs ratio {flops:.2f}x{bound})', None)
        ]
    out = []
    for attention in ('explicit', 'fused'):
        row = _row(
            rows, kind='sta', drop_number=r, attention=attention,
            precision=prec)
        out.append(
            _target(f'STA r={r} / oracle ({attention}, {prec})',
                    ratio(row, _row(rows, variant=row['oracle'])), clock,
                    '<= 1.03', lambda v: v <= 1.03))
    bf16 = _row(
        rows, kind='sta', drop_number=r, attention='fused',
        precision='bf16')
    stock = _row(rows, kind='stock', precision='fp32')
    out.append(
        _target(f'fused r={r} bf16 over stock fp32', ratio(stock, bf16),
                clock, '>= 7 (ViT-S; needs --amp bf16)', lambda v: v >= 7))
    out.append(
        _target(gain, ratio(fused0, fusedr), clock,
                f'>= GFLOPs ratio {flops:.2f}', lambda v: v >= flops))
    explicit0 = _row(
        rows, kind='sta', drop_number=0, attention='explicit', precision=prec)
    mem = fused0['peak_mem_mb'] / explicit0['peak_mem_mb']
    out.append(
        _target(f'peak memory fused r=0 / explicit r=0 ({prec})',
                (mem, mem), clock, '<= 0.25', lambda v: v <= 0.25))
    return out


def _cell(value, fmt: str, suffix: str = '') -> str:
    return '' if value is None else format(value, fmt) + suffix


def speed_table(rows: List[Dict]) -> str:
    """The table of :func:`speed_benchmark`'s rows."""
    return format_table([[
        row['variant'], row['drop_number'], row['precision'],
        _cell(row['gflops'], '.2f'),
        _cell(row.get('latency_ms'), '.1f'),
        _cell(row.get('cpu_ms'), '.1f'),
        _cell(row.get('clips_per_s'), '.3f'),
        _cell(row.get('peak_mem_mb'), '.1f'),
        _cell(row.get('speedup_vs_stock'), '.2f', 'x'),
        _cell(row.get('speedup_vs_best_unpruned'), '.2f', 'x'),
        _cell(row.get('oracle_ratio'), '.3f'), row['note']
    ] for row in rows], [
        'variant', 'r', 'precision', 'GFLOPs', 'ms/clip', 'CPU ms/clip',
        'clips/s', 'peak MiB', 'vs stock fp32', 'vs best r=0', 'STA / oracle',
        'note'
    ])


def targets_table(targets: List[Dict]) -> str:
    """The targets block of :func:`speed_targets`."""
    verdict = {True: 'pass', False: 'FAIL', None: 'n/a'}
    return format_table([[
        t['check'], 'not run' if t['value'] is None else f'{t["value"]:.3f}',
        t['clock'],
        _cell(t['value_wall'], '.3f'),
        _cell(t['value_cpu'], '.3f'), t['target'], verdict[t['passed']]
    ] for t in targets], [
        'target', 'measured', 'on', 'wall clock', 'CPU time', 'wanted',
        'result'
    ])


def breakdown_lines(result: Dict) -> List[str]:
    """One line per attention path of the Swin breakdown."""
    lines = []
    for attention, part in (result.get('breakdown') or {}).items():
        total = part['total']
        lines.append(
            f'{attention} r=0 forward {total:.3f} s of '
            f'{CLOCKS[result["clock"]]}: patch embedding + '
            f'stage 1 + window-attention core of stages 2-4 '
            f'{part["fixed"]:.3f} s ({part["fixed"] / total:.0%}), per-token '
            f'layers of stages 2-4 {part["per_token"]:.3f} s '
            f'({part["per_token"] / total:.0%}), other {part["other"]:.3f} s;'
            f' Amdahl at r={result["drop_numbers"][-1]}: ideal '
            f'{part["ideal"]:.3f}x (per-token layers scaled by kept tokens, '
            f'no overhead), ceiling {part["ceiling"]:.3f}x (per-token layers '
            f'free)')
    return lines


def plot_speed(rows: List[Dict], path: str, title: str) -> str:
    """ms per clip and speed-up over stock fp32 against r, per variant."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    series: Dict[str, List[Dict]] = {}
    for row in rows:
        if row['supported'] and row['kind'] != 'stock':
            name = f'{row["kind"]} {row["attention"]} {row["precision"]}' + (
                ' compiled' if row['compiled'] else '')
            series.setdefault(name, []).append(row)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    unpruned = {(row['attention'], row['precision']): row
                for row in rows if row['kind'] == 'sta' and row['supported']
                and not row['compiled'] and row['drop_number'] == 0}
    for name, points in series.items():
        first = points[0]
        start = unpruned.get((first['attention'], first['precision']))
        if first['kind'] == 'oracle' and start is not None:
            points = [start] + points  # nothing to slice at r=0
        points = sorted(points, key=lambda p: p['drop_number'])
        rs = [p['drop_number'] for p in points]
        axes[0].plot(rs, [p['latency_ms'] for p in points], 'o-', label=name)
        axes[1].plot(rs, [p['speedup_vs_stock'] for p in points], 'o-')
    for row in rows:
        if row['kind'] == 'stock' and row['supported']:
            axes[0].axhline(
                row['latency_ms'],
                ls='--' if row['precision'] == 'fp32' else ':',
                color='black',
                lw=1,
                label=f'stock {row["precision"]}')
    axes[0].set_ylabel('ms per clip')
    axes[1].set_ylabel('x faster than stock fp32')
    for ax in axes:
        ax.set_xlabel('drop number r')
        ax.set_xticks(sorted({row['drop_number'] for row in rows}))
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_speed(result: Dict, out_dir: str, stem: str, title: str,
                **settings) -> Tuple[str, str]:
    """Write :func:`speed_benchmark`'s result as ``<stem>.json`` and
    ``<stem>.png`` in ``out_dir``.

    Args:
        result (dict): :func:`speed_benchmark`'s result.
        out_dir (str): Folder of the files, made if missing.
        stem (str): File name stem.
        title (str): Title of the plot.
        **settings: Further entries of the JSON (config, amp, ...).

    Returns:
        tuple[str]: The JSON and the PNG paths.
    """
    mkdir_or_exist(out_dir)
    json_path = osp.join(out_dir, f'{stem}.json')
    with open(json_path, 'w') as f:
        json.dump(dict(settings, title=title, **result), f, indent=2)
    return json_path, plot_speed(result['rows'],
                                 osp.join(out_dir, f'{stem}.png'), title)


def run_speed_benchmark(config: str,
                        drop_numbers: Optional[Sequence[int]] = None,
                        out_dir: str = 'work_dirs/benchmark',
                        stem: Optional[str] = None,
                        threads: Optional[int] = None,
                        flush_denormal: bool = False,
                        cfg_options: Optional[Dict] = None,
                        tiny: bool = False,
                        **options) -> Dict:
    """What the benchmark tools run: set up, time, log and write.

    Args:
        config (str): The config file.
        drop_numbers (Sequence[int], optional): See :func:`speed_benchmark`.
            Defaults to None.
        out_dir (str): Where the JSON and PNG go. Defaults to
            ``'work_dirs/benchmark'``.
        stem (str, optional): Their file name stem. Defaults to None, the
            config's name.
        threads (int, optional): torch CPU threads. Defaults to None.
        flush_denormal (bool): Flush subnormal floats on the CPU, for every
            variant. Defaults to False.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        tiny (bool): Shrink the backbone, clip and drop numbers to
            :data:`TINY` (a seconds-long run of every step). Defaults to
            False.
        **options: Further :func:`speed_benchmark` arguments.

    Returns:
        dict: The result, with ``json`` and ``png`` paths and ``text`` (what
        was logged).
    """
    if threads is not None and threads < 1:
        raise ValueError(f'--threads={threads} must be >= 1.')
    setup_cpu(threads, flush_denormal)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if tiny:
        overrides, clip, rs = TINY[sta_class(cfg).__name__]
        cfg.model.backbone.update(overrides)  # replaced, not merged
        options['clip_shape'] = clip
        drop_numbers = rs if drop_numbers is None else drop_numbers
    result = speed_benchmark(cfg, drop_numbers, **options)
    stem = stem or osp.splitext(osp.basename(config))[0]
    title = (f'{stem} ({result["backbone"]}), batch {tuple(result["shape"])}'
             f', {result["hardware"]}, subnormals '
             f'{"flushed" if flush_denormal else "kept"}, median of '
             f'{result["repeats"]} after {result["warmup"]} warm-up, 1-min '
             f'load {result["load"][0]:.2f} -> {result["load"][1]:.2f}, '
             'clips/s, speed-ups and targets on the '
             f'{CLOCKS[result["clock"]]}')
    lines = [title, speed_table(result['rows'])]
    lines += breakdown_lines(result)
    if result['targets']:
        lines.append(targets_table(result['targets']))
    json_path, png_path = write_speed(
        result,
        out_dir,
        stem,
        title,
        config=config,
        tiny=tiny,
        flush_denormal=flush_denormal,
        **{k: v
           for k, v in options.items() if k not in result})
    lines.append(f'wrote {json_path} and {png_path}')
    text = '\n'.join(lines)
    print_log(text, logger='current')
    return dict(result, json=json_path, png=png_path, text=text)


def swin_breakdown(model: STASwin3D,
                   pruned: STASwin3D,
                   clip: torch.Tensor,
                   repeats: int,
                   clock: str = 'wall') -> Dict[str, float]:
    """Median seconds per part of one r=0 STASwin3D forward, and the bounds.

    In extra r=0 forwards, the parts that STA's design does not shrink (the
    patch embedding, stage 1, and the window-attention core of stages 2-4,
    which runs on full windows so that the FLOPs are the paper's) and the
    per-token rest of stages 2-4 (norms, qkv, output projection, MLP, and
    the windowing around the core) are timed: with module hooks on the
    explicit (stock) path, and with :class:`~.timing.CallTimer` on the stage
    and attention-core functions of the fused path
    (``model.fused_attention``), which calls no attention module. The patch
    mergings between stages fall into ``other`` (under 1% of the FLOPs).

    Args:
        model (STASwin3D): The r=0 backbone.
        pruned (STASwin3D): The pruned one, for its kept tokens per stage.
        clip (Tensor): (N, C, T, H, W) input.
        repeats (int): Forwards timed; the median of each part is kept.
        clock (str): ``'wall'`` (``time.perf_counter``) or ``'cpu'`` (the
            process CPU time, for one torch thread on a loaded machine).
            Defaults to ``'wall'``.

    Returns:
        dict: ``total``, ``fixed`` (patch embedding, stage 1 and the
        window-attention core of stages 2-4), ``per_token`` (the rest of
        stages 2-4, the final norm), ``scaled`` (``per_token`` with each
        stage's share weighted by the tokens ``pruned`` keeps), ``other``,
        and the ``ideal`` (the pruned path costs nothing else) and
        ``ceiling`` (the per-token rest vanished) speed-ups.
    """
    if repeats < 1:
        raise ValueError(f'--breakdown-repeats={repeats} must be >= 1 to '
                         'time the parts (0 skips the breakdown).')
    if clock not in CLOCKS:
        raise ValueError(f'clock={clock!r}: choose one of {sorted(CLOCKS)}.')
    read = time.process_time if clock == 'cpu' else time.perf_counter
    fused = model.fused_attention
    modules = {
        'embed': model.patch_embed,
        'norm': getattr(model, f'norm{model.num_layers - 1}')
    }
    stages = {
        id(layer): f'stage{s}'
        for s, layer in enumerate(model.layers, 1)
    }
    cores = {
        id(blk): f'core{s}.{i}'
        for s, layer in enumerate(model.layers[1:], 2)
        for i, blk in enumerate(layer.blocks)
    }
    if not fused:
        for s, layer in enumerate(model.layers, 1):
            modules[f'stage{s}'] = layer
        for s, layer in enumerate(model.layers[1:], 2):
            for i, blk in enumerate(layer.blocks):
                modules[f'core{s}.{i}'] = blk.attn
                modules[f'qkv{s}.{i}'] = blk.attn.qkv
                modules[f'proj{s}.{i}'] = blk.attn.proj
    runs = []
    for _ in range(repeats):
        with PartTimer(modules, read) as timer:
            if fused:
                with CallTimer(sta_swin, 'layer_forward_fused', stages,
                               read) as st, CallTimer(
                                   swin_layers, 'window_attention_core',
                                   cores, read) as co:
                    wall, cpu = time_once(model, clip)
                sec = dict(timer.seconds, **st.seconds, **co.seconds)
            else:
                wall, cpu = time_once(model, clip)
                sec = dict(timer.seconds)
                for key in cores.values():
                    # the attention module's own time, less qkv and proj
                    sec[key] -= sec['qkv' + key[4:]] + sec['proj' + key[4:]]
        runs.append((cpu if clock == 'cpu' else wall, sec))
    # kept share of the tokens that each stage's per-token layers see
    full = model.token_counts(tuple(clip.shape[2:]))
    kept = pruned.token_counts(tuple(clip.shape[2:]))
    parts = []
    for total, sec in runs:
        core = {
            s: sum(sec[f'core{s}.{i}']
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
