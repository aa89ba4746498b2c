"""GFLOPs of (pruned) backbones with fvcore, plus an analytic cross-check.

fvcore counts one multiply-add as one FLOP, the papers' convention, and
traces the real forward: STA's similarity matmuls count, pruned tokens do
not; element-wise ops, softmax, sorts and gathers are skipped.
:func:`sdpa_flop_jit` counts ``scaled_dot_product_attention``, which fvcore
would skip.
"""
import copy
import math
import os.path as osp
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from mmaction.models.backbones.swin import SwinTransformer3D, get_window_size
from mmengine.config import Config
from torch import nn

from ..core import (NEEDS_KEYS, group_schedule, prune_layers,
                    swin_grids, swin_plan, token_counts, validate_drop_number)
from ..datasets.sampling import MULTI_CROP_TYPES, SAMPLER_TYPES
from ..models import STASwin3D, STAViT
from ..models.sta_swin import DEFAULT_CLIP, SWIN_STRATEGIES
from ..models.swin_layers import query_slots


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``.

    ``q @ k^T`` costs ``L * S * E`` and ``attn @ v`` costs ``L * S * Ev``
    multiply-adds per batch element and head.
    """
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    length, embed = q[-2], q[-1]
    source = k[-2]
    return batch * length * source * (embed + v[-1])


#: Extra fvcore handles; ops fvcore would skip that carry real work.
EXTRA_HANDLES = {'aten::scaled_dot_product_attention': sdpa_flop_jit}


def count_flops(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> Dict:
    """Trace ``model(*inputs)`` with fvcore.

    Returns:
        dict: ``flops`` (total), ``by_module`` (dict of module name to
        FLOPs) and ``unsupported`` (op name to count of skipped calls).
    """
    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return dict(flops=analysis.total(), by_module=dict(analysis.by_module()),
                unsupported=dict(analysis.unsupported_ops()))


def _pipeline(cfg: Config) -> Sequence[dict]:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader is not None:
            return loader['dataset'].get('pipeline', [])
    return cfg.get('test_pipeline', [])


def view_shape(cfg: Config) -> Tuple[int, int, int, int, int]:
    """(1, C, T, H, W) of one view, as the test pipeline makes it.

    ``T`` is the sampler's ``clip_len`` (else the backbone's ``num_frames``);
    ``H, W`` those of the last crop or fixed-size ``Resize``, never the
    backbone's ``img_size``. A pipeline whose views take each video's aspect
    ratio (no crop after a ratio-keeping resize) is run on the first video of
    its list; without that video it is a ``ValueError``.
    """
    backbone = cfg.model.backbone
    frames, size = backbone.get('num_frames'), None
    varies = 'it has no crop or fixed-size Resize'
    for step in _pipeline(cfg):
        kind = step.get('type', '')
        if kind in SAMPLER_TYPES:
            frames = step.get('clip_len', frames)
        if kind in MULTI_CROP_TYPES + ('CenterCrop', ):
            size = _height_width(step['crop_size'])
        elif kind == 'Resize' and step.get('keep_ratio', True) is False:
            size = _height_width(step['scale'])
        elif kind in ('Resize', 'VideoMAEResize'):
            size, varies = None, f'{kind} keeps each video\'s aspect ratio'
    if frames is None:
        raise ValueError('cannot tell the frames of a view from the config: '
                         'no sampler clip_len in the test pipeline and no '
                         'num_frames in model.backbone; pass --shape.')
    if size is None:
        return _measured_view(cfg, varies)
    return 1, backbone.get('in_channels', 3), int(frames), *size


def _height_width(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """(H, W) of an MMAction2 ``crop_size`` or ``scale`` (int, or (W, H))."""
    if isinstance(size, int):
        return size, size
    return int(size[1]), int(size[0])


def _measured_view(cfg: Config, why: str) -> Tuple[int, int, int, int, int]:
    """(1, C, T, H, W) of the first video's view through the test pipeline
    (1 clip x 1 crop)."""
    from mmaction.registry import DATASETS

    from ..datasets import single_view_pipeline
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    ann_file = osp.join(dataset.get('data_root') or '', dataset.ann_file)
    if not osp.isfile(ann_file):
        raise ValueError(
            f'the view size of the test pipeline depends on each video '
            f'({why}), and its list {ann_file} is not here to measure one: '
            'pass --shape 1 C T H W, or point test_dataloader at your data.')
    dataset.pipeline = single_view_pipeline(cfg)
    inputs = DATASETS.build(dataset)[0]['inputs']  # (1, C, T, H, W)
    return (1, *map(int, inputs.shape[1:]))


def view_token_counts(backbone: nn.Module, shape: Sequence[int]) -> List[int]:
    """Tokens of an STA backbone on a (1, C, T, H, W) view, per prune point.

    Empty for a backbone that does not prune.
    """
    if isinstance(backbone, (STASwin3D, STAViT)):
        return list(backbone.token_counts(tuple(shape)))
    return []


def backbone_report(backbone: nn.Module,
                    shape: Tuple[int, int, int, int, int],
                    seed: int = 0) -> Dict:
    """GFLOPs, parameters and kept tokens of ``backbone`` on one view.

    The counting forward leaves torch's global RNG as it was (forked), so a
    test run draws the same keep sets with or without the report. An
    ``STAViT`` with ``rlt_threshold`` keeps as many tokens as each clip has
    changing patches: its ``gflops`` and ``tokens`` are None and
    ``adaptive`` holds :func:`adaptive_fit`.

    Args:
        backbone (nn.Module): A built backbone, in eval mode or not.
        shape (tuple[int]): (1, C, T, H, W) of the view.
        seed (int): Seed of the random view. Defaults to 0.

    Returns:
        dict: ``gflops``, ``params_m``, ``tokens`` (see
        :func:`view_token_counts`), ``unsupported`` ops and ``adaptive``
        (None unless adaptive).
    """
    was_training = backbone.training
    backbone.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(backbone.parameters()).device
    view = torch.randn(shape, generator=gen).to(device)
    cuda = [device] if device.type == 'cuda' else []
    adaptive = getattr(backbone, 'rlt_threshold', None) is not None
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        if adaptive:
            fit = adaptive_fit(backbone, view)
        else:
            counted = count_flops(backbone, (view, ))
    backbone.train(was_training)
    params = sum(p.numel() for p in backbone.parameters()) / 1e6
    if adaptive:
        return dict(gflops=None, params_m=params, tokens=None,
                    unsupported=fit.pop('unsupported'), adaptive=fit)
    return dict(gflops=counted['flops'] / 1e9, params_m=params,
                tokens=view_token_counts(backbone, shape),
                unsupported=counted['unsupported'], adaptive=None)


def adaptive_fit(backbone: STAViT, view: torch.Tensor) -> Dict:
    """GFLOPs of an ``rlt_threshold`` STAViT as a function of its tokens.

    Every block runs on the ``M`` kept tokens, so fvcore's count is
    ``c0 + c1 * M + c2 * M**2``: three views of ``view``'s shape, built to
    keep the first tubelet, half of them and all, are traced and the
    quadratic through them is exact (:func:`adaptive_gflops` evaluates it).

    Args:
        backbone (STAViT): With ``rlt_threshold`` set, in eval mode.
        view (Tensor): (1, C, T, H, W) its first frame the views' content.

    Returns:
        dict: ``rlt_threshold``, ``fit`` (``[c0, c1, c2]``), ``tokens``
        and ``gflops`` (the least and the most a clip can have) and
        ``unsupported`` ops.
    """
    tau, t = backbone.rlt_threshold, view.shape[2]
    tubelet = torch.arange(t, device=view.device) // backbone.tubelet_size
    points, unsupported = [], {}
    for last in (0, t // backbone.tubelet_size // 2,
                 t // backbone.tubelet_size - 1):
        # tubelets 1..last step by tau + 1 (all changed), later ones still
        level = tubelet.clamp(max=last).float() * (tau + 1)  # (T, )
        clip = view[:, :, :1] + level.view(1, 1, t, 1, 1)  # (1, C, T, H, W)
        counted = count_flops(backbone, (clip, ))
        unsupported.update(counted['unsupported'])
        points.append((int(backbone.clip_token_counts(clip)[0]),
                       counted['flops']))
    m = torch.tensor([p[0] for p in points], dtype=torch.float64)
    flops = torch.tensor([p[1] for p in points], dtype=torch.float64)
    fit = torch.linalg.solve(torch.stack([m**0, m, m**2], 1), flops)
    fit = fit.tolist()
    lo, hi = points[0][0], points[-1][0]
    return dict(rlt_threshold=tau, fit=fit, tokens=[lo, hi],
                gflops=adaptive_gflops(fit, [lo, hi]),
                unsupported=unsupported)


def adaptive_gflops(fit: Sequence[float], tokens: Sequence[int]
                    ) -> List[float]:
    """GFLOPs of clips that keep ``tokens``, from :func:`adaptive_fit`."""
    return [(fit[0] + fit[1] * m + fit[2] * m * m) / 1e9 for m in tokens]


def analytic_vit_flops(embed_dims: int, depth: int, num_heads: int,
                       tokens_per_slice: int, num_slices: int,
                       drop_number: int = 0, mlp_ratio: float = 4.,
                       patch_size: int = 16, tubelet_size: int = 2,
                       in_channels: int = 3) -> float:
    """Multiply-adds (FLOPs) of an (STA-pruned) VideoMAE ViT, by hand.

    An independent cross-check of fvcore's trace: linear layers, attention
    matmuls and STA's selection; without norms it sits slightly under.

    Args:
        embed_dims (int): Token width ``C``.
        depth (int): Number of blocks.
        num_heads (int): Attention heads; STA's keys are ``C / heads`` wide.
        tokens_per_slice (int): Spatial tokens per temporal slice.
        num_slices (int): Temporal slices ``T0``.
        drop_number (int): ``r``. Defaults to 0.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        patch_size (int): Spatial patch side. Defaults to 16.
        tubelet_size (int): Temporal patch size. Defaults to 2.
        in_channels (int): Input channels. Defaults to 3.
    """
    c = embed_dims
    key_dims = c // num_heads
    hidden = int(c * mlp_ratio)
    counts = token_counts(tokens_per_slice, num_slices, drop_number)
    layers = prune_layers(depth) if drop_number else ()
    groups = group_schedule(num_slices)
    flops = counts[0] * c * in_channels * tubelet_size * patch_size**2
    seen = 0  # prune points passed
    for i in range(depth):
        n = counts[seen]
        flops += n * c * 3 * c + 2 * n * n * c + n * c * c + 2 * n * c * hidden
        if i in layers:
            g = groups[seen]
            flops += _sta_select_flops(g, n // g, drop_number, key_dims)
            seen += 1
    return float(flops)


#: fvcore's count per element of an affine ``LayerNorm``.
LAYER_NORM_FLOPS = 5

#: Strategies whose selection runs STA's key matmuls; the others (random
#: draws, activation sums) do no multiply-adds.
SCORING_STRATEGIES = ('sta', 'temporal')


def _sta_select_flops(groups: int, size: int, drop: int,
                      key_dims: int) -> int:
    """Multiply-adds of ``sta_select`` on ``groups`` groups of ``size``."""
    if drop <= 0:  # sta_select keeps everything without scoring
        return 0
    half = size // 2
    flops = (size - half) * half * key_dims  # parity matching
    src = size  # the first group passes all its tokens on
    for _ in range(groups - 1):
        flops += src * size * key_dims + src * size  # cos, w @ P
        src = size - drop
    return flops


def _swin_arch(arch: Union[str, Dict]) -> Tuple[int, List[int], List[int]]:
    """``SwinTransformer3D``'s ``arch`` -> embed_dims, depths, num_heads."""
    zoo = SwinTransformer3D.arch_zoo
    if isinstance(arch, str):
        if arch.lower() not in zoo:
            raise ValueError(f'arch={arch!r} is not a Video Swin arch; use '
                             f'one of {sorted(zoo)} or a dict of '
                             'embed_dims, depths and num_heads.')
        arch = zoo[arch.lower()]
    keys = ('embed_dims', 'depths', 'num_heads')
    if not isinstance(arch, dict) or set(arch) != set(keys):
        raise ValueError(f'arch={arch!r} must be a name or a dict with '
                         f'exactly the keys {keys}.')
    depths, heads = list(arch['depths']), list(arch['num_heads'])
    if len(depths) != 4 or len(heads) != 4:
        raise ValueError(f'arch={arch!r}: analytic_swin_flops counts the 4 '
                         'stages of STASwin3D, so depths and num_heads need '
                         '4 entries each.')
    return int(arch['embed_dims']), depths, heads


def analytic_swin_flops(arch: Union[str, Dict],
                        clip: Sequence[int] = DEFAULT_CLIP,
                        drop_number: int = 0, strategy: str = 'sta',
                        window_size: Sequence[int] = (8, 7, 7),
                        patch_size: Sequence[int] = (2, 4, 4),
                        mlp_ratio: float = 4., in_channels: int = 3,
                        patch_norm: bool = True) -> float:
    """Multiply-adds (FLOPs) of an (STA-pruned) ``STASwin3D``, by hand.

    Priced on what :meth:`STASwin3D.forward_pruned` runs, with the kept
    tokens of :func:`sta_mmaction.core.swin_plan`: unpruned stages on the
    grid (qkv and proj padded to whole windows); at a prune point norm1 and
    keys on every candidate for a strategy that reads keys, the rest and the
    following blocks on kept tokens; window attention over full windows, or
    at a prune point over the kept tokens' query tiles
    (:func:`~sta_mmaction.models.swin_layers.query_slots`); merging on the
    carried tokens. Norms are priced as fvcore
    prices them (:data:`LAYER_NORM_FLOPS` per element), so the count equals
    fvcore's trace (``tests/test_analysis/test_flops.py``).

    Args:
        arch (str | dict): ``SwinTransformer3D``'s ``arch``: a name of its
            ``arch_zoo`` or a dict of ``embed_dims``, ``depths`` and
            ``num_heads`` (4 stages).
        clip (Sequence[int]): ``(T, H, W)``. Defaults to 32 x 224 x 224.
        drop_number (int): ``r``. Defaults to 0.
        strategy (str): The backbone's strategy. Defaults to ``'sta'``.
        window_size (Sequence[int]): Window. Defaults to ``(8, 7, 7)``.
        patch_size (Sequence[int]): Patch. Defaults to ``(2, 4, 4)``.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        in_channels (int): Input channels. Defaults to 3.
        patch_norm (bool): Norm the patch embedding. Defaults to True.
    """
    embed_dims, depths, num_heads = _swin_arch(arch)
    validate_drop_number(drop_number)
    if strategy not in SWIN_STRATEGIES:
        raise ValueError(f'strategy={strategy!r} is not a strategy of '
                         f'STASwin3D; choose one of {SWIN_STRATEGIES}.')
    if len(clip) != 3:
        raise ValueError(f'clip={tuple(clip)} must be the (T, H, W) of one '
                         'clip.')
    ln = LAYER_NORM_FLOPS
    d, grids = swin_grids(clip, patch_size)
    full = [d * h * w for h, w in grids]  # grid positions of stages 1-4
    if drop_number:
        points = swin_plan(clip, patch_size, drop_number)
        inputs = full[:1] + [p['groups'] * p['candidates'] for p in points]
        kept = full[:1] + [p['groups'] * p['kept'] for p in points]
    else:
        points, inputs, kept = [], full, full
    flops = full[0] * embed_dims * in_channels * math.prod(patch_size)
    if patch_norm:
        flops += ln * full[0] * embed_dims
    for s, (depth, heads) in enumerate(zip(depths, num_heads)):
        c = embed_dims * 2**s
        hidden = int(c * mlp_ratio)
        n, m = inputs[s], kept[s]
        if s:  # merging of the carried 2x2 cells: norm (4C') and 4C' -> C
            flops += n * 2 * c * (ln + c)
        dhw = (d, ) + grids[s]
        win = get_window_size(dhw, window_size)
        slots = query_slots(dhw, window_size, m if s and points else None)
        attn = 2 * slots * math.prod(win) * c  # q @ k^T, attn @ v
        # attention, proj, norm2 and MLP of a block on kept tokens
        tail = attn + m * c * c + ln * m * c + 2 * m * c * hidden
        if s and points:
            p = points[s - 1]
            keyed = n if strategy in NEEDS_KEYS else m  # norm1 and k
            flops += ln * keyed * c + keyed * c * c + 2 * m * c * c
            if strategy in SCORING_STRATEGIES:
                flops += _sta_select_flops(p['groups'], p['candidates'],
                                           p['drop'], c // heads)
            flops += depth * tail + (depth - 1) * (ln * m * c + 3 * m * c * c)
        else:
            padded = slots  # full windows
            flops += depth * (ln * m * c + 3 * padded * c * c + attn +
                              padded * c * c + ln * m * c +
                              2 * m * c * hidden)
    return float(flops + ln * kept[-1] * embed_dims * 2**3)  # final norm
