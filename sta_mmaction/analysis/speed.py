"""Speed of a backbone's variants side by side, on ``torch.utils.benchmark``.

Every variant is a copy of one built backbone (same weights) timed on one
clip: the stock backbone, STA at each r with explicit and fused attention,
each pruned one's oracle (``strategy='oracle'``: the same blocks on the same
token counts, no scoring), optionally under autocast and ``torch.compile``.
Each has one ``Timer`` (its warm-up, threads and device synchronisation);
rounds are interleaved, the order reversed every other round, so that drift
of a shared machine falls on all alike. The figures: ``docs/speed.md``.
"""
import copy
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
from contextlib import ExitStack
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils import benchmark

from ..core import swin_grids
from ..models import (STA_VERSIONS, STASwin3D, apply_pruning,
                      convert_backbone, pruning_of, sta_class)
from ..models.swin_layers import recorded_tiles, whole_window_keys
from .flops import backbone_report, view_shape
from .sweep import build_backbone, drop_numbers_of, stock_copy

AMP_DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)
#: r timed when none are given: the paper's.
DEFAULT_DROP_NUMBERS = {'STAViT': (0, 32, 48, 64), 'STASwin3D': (0, 320)}
#: Backbone overrides, clip (T, H, W) and r of a seconds-long run.
TINY = {
    'STAViT': (dict(img_size=64, embed_dims=64, depth=3, num_heads=4,
                    num_frames=16), (16, 64, 64), (0, 2, 4)),
    'STASwin3D': (dict(arch=dict(embed_dims=24, depths=[2, 2, 2, 2],
                                 num_heads=[1, 2, 2, 4]),
                       window_size=(2, 4, 4), drop_path_rate=0.),
                  (8, 64, 64), (0, 16)),
}


def setup_cpu(threads: Optional[int] = None,
              flush_denormal: bool = False) -> None:
    """Set torch's CPU threads and, if asked, flush subnormal floats."""
    if threads is not None and threads < 1:
        raise ValueError(f'--threads={threads} must be >= 1.')
    if threads:
        torch.set_num_threads(threads)
    if flush_denormal and not torch.set_flush_denormal(True):
        raise ValueError('--flush-denormal: this CPU cannot flush subnormal '
                         'floats (torch.set_flush_denormal returned False).')


def hardware_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and torch's thread count."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            name = next((line.split(':', 1)[1].strip() for line in f
                         if line.startswith('model name')), name)
    n = torch.get_num_threads()
    return f'{name}, {n} thread{"s" if n != 1 else ""}'


def environment(device: torch.device) -> Dict:
    """What a speed figure depends on: hardware, versions, math settings."""
    env = dict(hardware=hardware_name(device), torch=torch.__version__,
               threads=torch.get_num_threads(), load_1min=os.getloadavg()[0])
    if device.type == 'cuda':
        sdp = torch.backends.cuda
        env.update(
            cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
            tf32_matmul=sdp.matmul.allow_tf32,
            tf32_cudnn=torch.backends.cudnn.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            sdpa_backends=[name for name in ('flash', 'mem_efficient',
                                             'cudnn', 'math')
                           if getattr(sdp, f'{name}_sdp_enabled')()])
    return env


def with_autocast(forward: Callable, device: torch.device,
                  amp: Optional[str]) -> Callable:
    """``forward`` under ``amp`` autocast (``None``: ``forward`` itself)."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f'--amp={amp!r} is not supported; choose one of '
                         f'{sorted(AMP_DTYPES)} or none (full precision).')
    if amp is None or forward is None:
        return forward

    def run(clip):
        with torch.autocast(device.type, dtype=AMP_DTYPES[amp]):
            return forward(clip)

    return run


def time_forwards(forwards: Mapping[str, Callable], clip: torch.Tensor,
                  rounds: int = 5, number: int = 1, cpu_time: bool = False,
                  columns: Optional[Mapping[str, tuple]] = None
                  ) -> Dict[str, benchmark.Measurement]:
    """Label -> merged ``Measurement`` of interleaved ``Timer`` rounds.

    Args:
        forwards (Mapping[str, Callable]): Label -> callable of the clip.
        clip (Tensor): The input of every forward.
        rounds (int): ``Timer.timeit(number)`` calls per forward (each warms
            up first). Defaults to 5.
        number (int): Forwards per round. Defaults to 1.
        cpu_time (bool): Process CPU time, not the synchronised wall clock.
            Defaults to False.
        columns (Mapping, optional): Label -> ``(row, column)`` in the
            ``Compare`` table. Defaults to None: the label is the row.
    """
    extra = dict(timer=time.process_time) if cpu_time else {}
    columns = columns or {}
    timers = {label: benchmark.Timer(
        'f(x)', globals=dict(f=forward, x=clip), label='backbone forward',
        num_threads=torch.get_num_threads(),
        sub_label=columns.get(label, (label, ''))[0],
        description=columns.get(label, (label, ''))[1], **extra)
        for label, forward in forwards.items()}
    runs = {label: [] for label in forwards}
    with torch.no_grad():
        for i in range(rounds):
            for label in list(forwards)[::-1 if i % 2 else 1]:
                runs[label].append(timers[label].timeit(number))
    return {label: benchmark.Measurement.merge(m)[0]
            for label, m in runs.items()}


def peak_memory_mb(forward: Callable, clip: torch.Tensor) -> float:
    """Peak tensor memory of one forward above its start, in MiB: CUDA's
    peak counter, or ``torch.profiler``'s CPU allocations in time order."""
    with torch.no_grad():
        if clip.device.type == 'cuda':
            torch.cuda.synchronize(clip.device)
            torch.cuda.reset_peak_memory_stats(clip.device)
            base = torch.cuda.memory_allocated(clip.device)
            forward(clip)
            torch.cuda.synchronize(clip.device)
            return (torch.cuda.max_memory_allocated(clip.device) -
                    base) / 2**20
        with profile(activities=[ProfilerActivity.CPU],
                     profile_memory=True) as prof:
            forward(clip)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def build_variants(cfg, drop_numbers: Optional[Sequence[int]], stock: bool,
                   device: torch.device) -> List[tuple]:
    """``(label, r, model)`` per r, pruned as its test run is, then the
    stock backbone if ``stock``; the same weights throughout."""
    base = build_backbone(cfg)
    pruning = pruning_of(cfg)
    out = []
    for r in drop_numbers_of(cfg, drop_numbers):
        model = apply_pruning(copy.deepcopy(base), pruning, r).eval()
        out.append((f'{type(model).__name__} r={r}', r, model.to(device)))
    if stock:
        model = stock_copy(base)
        model.eval()  # stock SwinTransformer3D.train() returns None
        out.append((f'{type(model).__name__} (stock)', 0, model.to(device)))
    return out


def oracle_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a pruned STA backbone with ``strategy='oracle'``."""
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
    return convert_backbone(copy.deepcopy(model), model.drop_number,
                            strategy='oracle')


def _whole_window_keys(model: STASwin3D) -> Callable:
    """``model`` with its tiles' keys as whole windows, the layout of graph
    captures and accelerators, timed beside the packed keys of the CPU."""

    def forward(x):
        with whole_window_keys():
            return model(x)

    return forward


def speed_variants(stock: torch.nn.Module, sta: Dict[tuple, torch.nn.Module],
                   device: torch.device, amp: Optional[str] = None,
                   amp_only: bool = False,
                   compile: Union[bool, Sequence[int]] = False) -> List:
    """Variant records, stock fp32 first (``forward`` None: unsupported).

    Args:
        stock (nn.Module): MMAction2's stock backbone.
        sta (dict): ``(r, 'explicit' or 'fused')`` -> STA backbone.
        device (torch.device): Where they run.
        amp (str, optional): ``'bf16'`` or ``'fp16'``: every variant also
            under this autocast. Defaults to None.
        amp_only (bool): STA and oracle under ``amp`` only. Defaults to
            False.
        compile (bool or Sequence[int]): ``torch.compile``-d fused STA and
            oracle rows (CUDA graphs on a GPU) at every r or these.
            Defaults to False.
    """
    rs = sorted({r for r, _ in sta})
    twins = {}
    for key, model in sta.items():
        if not key[0]:
            continue  # nothing pruned: no oracle row
        try:
            twins[key] = oracle_twin(model), ''
        except ValueError as err:  # ToMe merges: nothing to select
            twins[key] = None, f'not supported: {err}'

    def variant(name, kind, r, attention, prec, forward, note='',
                compiled=False):
        return dict(variant=name, kind=kind, drop_number=r,
                    attention=attention, precision=prec or 'fp32',
                    compiled=compiled, note=note,
                    forward=with_autocast(forward, device, prec))

    out = [variant('stock', 'stock', 0, 'explicit', None, stock)]
    for prec in [amp] if amp_only else [None] + ([amp] if amp else []):
        tag = f' {prec}' if prec else ''
        if prec:
            out.append(variant(f'stock{tag}', 'stock', 0, 'explicit', prec,
                               stock))
        for att in ('explicit', 'fused'):
            out += [variant(f'STA {att} r={r}{tag}', 'sta', r, att, prec,
                            sta[r, att]) for r in rs]
            out += [variant(f'oracle {att} r={r}{tag}', 'oracle', r, att,
                            prec, *twins[r, att]) for r in rs if r]
        if device.type == 'cpu' and isinstance(sta[rs[-1], 'fused'],
                                               STASwin3D):
            out += [variant(f'STA fused r={r} whole-window keys{tag}',
                            'sta-static', r, 'fused', prec,
                            _whole_window_keys(sta[r, 'fused']))
                    for r in rs if r]
        if 0 in rs and isinstance(sta[0, 'explicit'], STASwin3D):
            path = sta[0, 'explicit']  # its gather/scatter forward at r=0
            out.append(variant(f'STA path explicit r=0{tag}', 'sta-path', 0,
                               'explicit', prec,
                               lambda x: path.forward_pruned(x)[0]))
    crs = rs if compile is True else [r for r in rs if r in (compile or ())]
    for kind, r in ([('STA', r) for r in crs] +
                    [('oracle', r) for r in crs if r]):
        model, note = sta[r, 'fused'], ''
        if kind == 'oracle':
            model, note = twins[r, 'fused']
        forward = None
        if model is not None:  # static shapes: CUDA graphs replay it all
            forward = torch.compile(model, dynamic=False, mode=(
                'reduce-overhead' if device.type == 'cuda' else None))
        out.append(variant(f'{kind} fused r={r}{" " + amp if amp else ""} '
                           'compiled', kind.lower(), r, 'fused', amp,
                           forward, note, True))
        out[-1]['eager'] = with_autocast(model, device, amp)
    return out


def speed_benchmark(cfg, drop_numbers: Optional[Sequence[int]] = None,
                    device: str = 'cpu', batch_size: int = 1,
                    repeats: int = 5, number: int = 1,
                    amp: Optional[str] = None, amp_only: bool = False,
                    compile: Union[bool, Sequence[int]] = False,
                    clip_shape: Optional[Sequence[int]] = None,
                    tf32: bool = True,
                    breakdown_repeats: Optional[int] = None,
                    strategies: Sequence[str] = (),
                    runtime: Optional[str] = None,
                    provider: str = 'CPUExecutionProvider') -> Dict:
    """Time every variant of a config's backbone side by side.

    Args:
        cfg (Config): A test config: an STA backbone, or a stock one pruned
            by an ``STAPruningHook``.
        drop_numbers (Sequence[int], optional): Defaults to None: the
            backbone's :data:`DEFAULT_DROP_NUMBERS`.
        device (str): Defaults to ``'cpu'``.
        batch_size (int): Clips per forward. Defaults to 1.
        repeats, number (int): Rounds, forwards per round. Defaults to 5, 1.
        amp (str, optional), amp_only, compile: See :func:`speed_variants`.
        clip_shape (Sequence[int], optional): ``(T, H, W)``. Defaults to
            None, the config's test view.
        tf32 (bool): CUDA: TF32 matmuls and convolutions (set either way,
            and recorded). Defaults to True.
        breakdown_repeats (int, optional): Forwards profiled by
            :func:`swin_breakdown` (0: none). Defaults to None: 2 for Swin
            on the CPU, else 0.
        strategies (Sequence[str]): Other strategies timed at every r > 0
            beside the config's (fp32, explicit and fused), each against
            the same oracle. Defaults to ().
        runtime (str, optional): ``'onnxruntime'``: also each r's explicit
            STA backbone exported to ONNX and run there
            (:func:`runtime_variants`). Defaults to None.
        provider (str): onnxruntime's execution provider. Defaults to the
            CPU's.

    Returns:
        dict: ``rows`` (one per variant: its settings, ``supported``,
        ``note``, ``gflops``, ``flops_ratio``, and when supported ``ms`` per
        clip, ``clips_per_s``, ``peak_mem_mb``, ``speedup_vs_stock``,
        ``speedup_vs_best_r0``, ``oracle_ratio``, ``times_s``), ``env``,
        ``breakdown``, ``compare`` (text) and the run's settings.
    """
    for name, value in (('--batch-size', batch_size), ('--repeats', repeats),
                        ('--number', number)):
        if value < 1:
            raise ValueError(f'{name}={value} must be >= 1.')
    if amp_only and amp is None:
        raise ValueError('--amp-only needs --amp bf16 or --amp fp16.')
    kind = sta_class(pruning_of(cfg).backbone)
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device={device} but CUDA is not available; use '
                         '--device cpu.')
    if not isinstance(compile, bool) and set(compile) - set(
            drop_numbers or DEFAULT_DROP_NUMBERS[kind.__name__]):
        raise ValueError(f'--compile {" ".join(map(str, compile))}: compile '
                         'only drop numbers that are timed (--drop-numbers).')
    if clip_shape is not None and (len(clip_shape) != 3 or
                                   min(clip_shape) < 1):
        raise ValueError(f'--clip {" ".join(map(str, clip_shape))}: give '
                         'the clip as three sizes T H W, each >= 1.')
    device = torch.device(device)
    with_autocast(None, device, amp)  # a bad --amp fails before building
    swin = kind is STASwin3D
    if breakdown_repeats is None:
        breakdown_repeats = 2 if swin and device.type == 'cpu' else 0
    if breakdown_repeats < 0 or (breakdown_repeats and
                                 (not swin or device.type != 'cpu')):
        raise ValueError(
            f'--breakdown-repeats={breakdown_repeats}: the breakdown profiles '
            'Video Swin on the CPU; use it >= 0 with a Swin model on --device '
            'cpu (0 skips it).')
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    drop_numbers = sorted(set(drop_numbers or
                              DEFAULT_DROP_NUMBERS[kind.__name__]))
    view = view_shape(cfg)
    shape = (batch_size, view[1]) + tuple(clip_shape or view[2:])
    *pruned, (_, _, stock) = build_variants(cfg, drop_numbers, True, device)
    sta = {}
    for _, r, model in pruned:
        if r and swin:
            model.token_schedule(shape)  # a ValueError if r is too large
        sta[r, 'explicit'] = convert_backbone(model, r, fused_attention=False)
        sta[r, 'fused'] = convert_backbone(
            copy.deepcopy(model), r, fused_attention=True)
    variants = speed_variants(stock, sta, device, amp, amp_only, compile)
    gflops = {r: backbone_report(model, (1, ) + shape[1:])['gflops']
              for r, model in [(0, stock)] + [(r, sta[r, 'explicit'])
                                              for r in drop_numbers if r]}
    for name in strategies:  # the same blocks and oracle, another rule
        for r, att in ((r, a) for r in drop_numbers if r
                       for a in ('explicit', 'fused')):
            model = convert_backbone(copy.deepcopy(sta[r, att]), r,
                                     strategy=name)
            variants.append(dict(
                variant=f'{name} {att} r={r}', kind='sta', drop_number=r,
                attention=att, precision='fp32', compiled=False, note='',
                forward=model, gflops=backbone_report(
                    model, (1, ) + shape[1:])['gflops']))
    clip = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    clip = clip.to(device)
    if runtime is not None:
        variants += runtime_variants(runtime, provider, {
            r: sta[r, 'explicit'] for r in drop_numbers}, clip)
    cpu_time = device.type == 'cpu' and torch.get_num_threads() == 1
    env = environment(device)
    columns = {}
    for v in variants:
        col = v['precision'] + (' compiled' if v['compiled'] else '')
        columns[v['variant']] = (v['variant'].replace(' ' + col, ''), col)
    timed = [v for v in variants if v['forward'] is not None]
    measured = time_forwards({v['variant']: v['forward'] for v in timed},
                             clip, repeats, number, cpu_time, columns)
    env['load_1min_after'] = os.getloadavg()[0]
    t = {label: m.median for label, m in measured.items()}
    best0 = min(t[v['variant']] for v in variants
                if v['forward'] is not None and v['drop_number'] == 0
                and v['kind'] != 'onnxruntime')
    key = ('drop_number', 'attention', 'precision', 'compiled')
    oracles = {tuple(v[k] for k in key): v['variant'] for v in variants
               if v['kind'] == 'oracle' and v['forward'] is not None}
    rows = []
    for v in variants:
        row = {k: val for k, val in v.items()
               if k not in ('forward', 'eager')}
        r, label = v['drop_number'], v['variant']
        own = v.get('gflops', gflops[r])
        row.update(supported=v['forward'] is not None, gflops=own,
                   flops_ratio=gflops[0] / own, env=env)
        if row['supported']:
            twin = oracles.get(tuple(v[k] for k in key))
            # inductor's CPU kernels and onnxruntime allocate past the
            # profiler's view
            blind = (v['compiled'] and device.type == 'cpu'
                     or v['kind'] == 'onnxruntime')
            row.update(
                ms=1e3 * t[label] / batch_size,
                clips_per_s=batch_size / t[label],
                peak_mem_mb=None if blind else peak_memory_mb(
                    v['forward'], clip),
                speedup_vs_stock=t['stock'] / t[label],
                speedup_vs_best_r0=best0 / t[label],
                oracle_ratio=t[label] / t[twin]
                if twin and v['kind'] == 'sta' else None,
                times_s=list(measured[label].times))
            if v['compiled']:  # the compiled graph computes what eager does
                with torch.no_grad():
                    diff = (v['forward'](clip).float() -
                            v['eager'](clip).float()).abs().max().item()
                row['compiled_max_abs_diff'] = diff
                row['note'] = '; '.join(
                    filter(None, [row['note'],
                                  f'max |compiled - eager| {diff:.1e}']))
        rows.append(row)
    runtime_r0 = t.get(f'{runtime} r=0')
    for row in rows:  # the exported file's own r=0 is its reference
        if row['kind'] == 'onnxruntime' and runtime_r0:
            row['speedup_vs_runtime_r0'] = runtime_r0 / t[row['variant']]
    breakdown = {}
    if breakdown_repeats and drop_numbers[0] == 0 and drop_numbers[-1]:
        breakdown = {att: swin_breakdown(
            sta[0, att], sta[drop_numbers[-1], att], clip, breakdown_repeats)
            for att in ('explicit', 'fused')}
    return dict(
        backbone=kind.__name__, shape=list(shape), drop_numbers=drop_numbers,
        repeats=repeats, number=number,
        clock='process CPU time' if cpu_time else 'wall clock', env=env,
        rows=rows, breakdown=breakdown or None,
        compare=str(benchmark.Compare(list(measured.values()))))


def runtime_variants(runtime: str, provider: str,
                     models: Mapping[int, torch.nn.Module],
                     clip: torch.Tensor) -> List[Dict]:
    """Variant records of ``models`` (r -> backbone) run in onnxruntime.

    Each is exported as ``tools/deployment/export_onnx.py`` exports it
    (:mod:`sta_mmaction.deployment`: a dynamic batch, fp32) and run by an
    onnxruntime session on ``provider`` with torch's thread count.
    """
    if runtime != 'onnxruntime':
        raise ValueError(f'--runtime={runtime!r} is not supported; choose '
                         'onnxruntime (or none: PyTorch only).')
    from ..deployment import (RecognizerGraph, example_inputs, export_onnx,
                              export_program, onnx_session, run_session)
    example = clip.cpu().repeat(2 if clip.shape[0] == 1 else 1, 1, 1, 1, 1)
    out = []
    with tempfile.TemporaryDirectory() as folder:  # sessions hold the graph
        for r, model in models.items():
            graph = RecognizerGraph(copy.deepcopy(model).cpu()).eval()
            path = osp.join(folder, f'r{r}.onnx')
            export_onnx(export_program(graph, example_inputs(graph, example)),
                        path, graph, {})
            session = onnx_session(path, provider=provider)
            out.append(dict(
                variant=f'{runtime} r={r}', kind=runtime, drop_number=r,
                attention='explicit', precision='fp32', compiled=False,
                note=provider, forward=lambda x, s=session, g=graph:
                run_session(s, example_inputs(g, x.cpu()))))
    return out


def swin_breakdown(model: STASwin3D, pruned: STASwin3D, clip: torch.Tensor,
                   repeats: int) -> Dict[str, float]:
    """Median seconds per part of an r=0 STASwin3D forward, and the bounds.

    ``torch.profiler`` spans of ``record_function`` labels (hooks on the
    stock modules; the fused path's functions carry their own): ``fixed``
    (patch embedding and stage 1) pruning cannot shrink; ``per_token`` (the
    rest of stages 2-4 and the final norm) shrinks with the kept tokens,
    and ``attention`` (the window-attention cores of stages 2-4) with the
    (query, key) scores ``pruned`` computes on ``clip`` (``scores``, per
    stage, of full windows: query tiles, and on the CPU packed keys), as
    ``scaled`` does stage by stage. ``ideal`` and ``ceiling`` are Amdahl's
    speed-ups: the pruned forward costing only that, and stages 2-4
    vanishing.

    Args:
        model (STASwin3D): The r=0 backbone (either attention path).
        pruned (STASwin3D): The pruned one, for its kept tokens per stage.
        clip (Tensor): (N, C, T, H, W) input on the CPU.
        repeats (int): Forwards profiled; each part's median is kept.
    """
    if repeats < 1:
        raise ValueError(f'--breakdown-repeats={repeats} must be >= 1 to '
                         'profile the parts (0 skips the breakdown).')
    labels = {model.patch_embed: 'patch_embed',
              getattr(model, f'norm{model.num_layers - 1}'): 'norm'}
    if not model.fused_attention:
        for i, layer in enumerate(model.layers, 1):
            labels[layer] = f'stage{i}'
            for blk in layer.blocks:
                labels.update({blk.attn: f'core{i}', blk.attn.qkv: 'qkv',
                               blk.attn.proj: 'proj'})
    view = tuple(clip.shape[2:])
    full, kept = (m.token_counts(view) for m in (model, pruned))
    d, grids = swin_grids(view, model.patch_embed.patch_size)
    with torch.no_grad(), recorded_tiles() as built:
        pruned.forward_pruned(clip)
    scores = {}
    for i in (2, 3, 4):
        stage = [t for dhw, t in built if dhw == (d, ) + grids[i - 1]]
        scores[i] = (sum(t.scores for t in stage) /
                     sum(t.window_scores for t in stage))
    parts = []
    for _ in range(repeats):
        with ExitStack() as stack:
            spans = {}
            for module, name in labels.items():
                stack.callback(module.register_forward_pre_hook(
                    lambda m, a, name=name: spans.setdefault(m, []).append(
                        record_function(name).__enter__())).remove)
                stack.callback(module.register_forward_hook(
                    lambda m, a, o: spans[m].pop().__exit__(None, None,
                                                            None)).remove)
            prof = stack.enter_context(profile(
                activities=[ProfilerActivity.CPU]))
            with torch.no_grad(), record_function('backbone'):
                model(clip)
        events = [(e.name, e.time_range.start / 1e6, e.time_range.end / 1e6)
                  for e in prof.events()]
        stages = sorted(e[1:] for e in events
                        if e[0] in ('layer_forward_fused', 'stage1',
                                    'stage2', 'stage3', 'stage4'))
        sec = {f'stage{i}': b - a for i, (a, b) in enumerate(stages, 1)}
        for name, a, b in events:
            if name in ('patch_embed', 'norm', 'backbone'):
                sec[name] = b - a
            elif name.startswith('core') or name == 'window_attention_core':
                i = next(i for i, (s, e) in enumerate(stages, 1)
                         if s <= a and b <= e)
                inner = sum(e - s for n, s, e in events
                            if n in ('qkv', 'proj') and a <= s and e <= b)
                sec[f'core{i}'] = sec.get(f'core{i}', 0) + b - a - inner
        rest = {i: sec[f'stage{i}'] - sec[f'core{i}'] for i in (2, 3, 4)}
        fixed = sec['patch_embed'] + sec['stage1']
        attention = sum(sec[f'core{i}'] for i in (2, 3, 4))
        scaled = sec['norm'] * kept[3] / full[3] + sum(
            rest[i] * kept[i - 1] / full[i - 1] +
            sec[f'core{i}'] * scores[i] for i in (2, 3, 4))
        per_token = sec['norm'] + sum(rest.values())
        parts.append(dict(total=sec['backbone'], fixed=fixed,
                          per_token=per_token, attention=attention,
                          scaled=scaled, other=sec['backbone'] - fixed -
                          per_token - attention))
    med = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    med['ideal'] = med['total'] / (med['fixed'] + med['other'] + med['scaled'])
    med['ceiling'] = med['total'] / (med['fixed'] + med['other'])
    med['scores'] = [scores[i] for i in (2, 3, 4)]
    return med
