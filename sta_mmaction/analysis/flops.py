"""GFLOPs of (pruned) backbones with fvcore, plus an analytic cross-check.

fvcore counts one multiply-add as one FLOP, the convention of the VideoMAE,
Video Swin and STA papers. It traces the real forward, so STA's own similarity
matmuls are counted and tokens that were pruned are not. Element-wise ops,
softmax, sorting and gathers are not counted, for the stock model and the
pruned one alike.

``scaled_dot_product_attention`` is skipped by both fvcore and mmengine's
counter; :func:`sdpa_flop_jit` gives fvcore a handle for it so that a
backbone that uses it is not undercounted.
"""
from typing import Any, Dict, List, Sequence, Tuple

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from mmengine.config import Config
from torch import nn

from ..core import group_schedule, prune_layers, token_counts
from ..datasets.sampling import MULTI_CROP_TYPES, SAMPLER_TYPES
from ..models import STASwin3D, STAViT


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
    return dict(
        flops=analysis.total(),
        by_module=dict(analysis.by_module()),
        unsupported=dict(analysis.unsupported_ops()))


def _pipeline(cfg: Config) -> Sequence[dict]:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader is not None:
            return loader['dataset'].get('pipeline', [])
    return cfg.get('test_pipeline', [])


def view_shape(cfg: Config) -> Tuple[int, int, int, int, int]:
    """(1, C, T, H, W) of one test view, read from the config.

    ``T`` is the ``clip_len`` of the sampler (``SampleFrames``, ...) and
    ``H = W`` the crop size of the test pipeline's crop; a backbone without
    those falls back to its ``num_frames`` and ``img_size``.
    """
    backbone = cfg.model.backbone
    frames = backbone.get('num_frames')
    size = backbone.get('img_size')
    for step in _pipeline(cfg):
        kind = step.get('type', '')
        if kind in SAMPLER_TYPES:
            frames = step.get('clip_len', frames)
        if kind in MULTI_CROP_TYPES + ('CenterCrop', ):
            crop = step.get('crop_size', size)
            size = crop if isinstance(crop, int) else crop[0]
    if frames is None or size is None:
        raise ValueError('cannot tell the view shape from the config: no '
                         'SampleFrames clip_len / crop_size in the test '
                         'pipeline and no num_frames / img_size in '
                         'model.backbone.')
    return 1, backbone.get('in_channels', 3), int(frames), int(size), int(size)


def view_token_counts(backbone: nn.Module,
                      shape: Sequence[int]) -> List[int]:
    """Tokens of an STA backbone on a (1, C, T, H, W) view, per prune point.

    ``STAViT``: before the first point and after each; ``STASwin3D``: the
    tokens of stages 1-4. Empty for a backbone that does not prune.
    """
    clip = tuple(int(n) for n in shape[2:])
    if isinstance(backbone, STASwin3D):
        return list(backbone.token_counts(clip))
    if isinstance(backbone, STAViT):
        p = backbone.patch_size
        return list(backbone.token_counts((clip[1] // p, clip[2] // p)))
    return []


def backbone_report(backbone: nn.Module,
                    shape: Tuple[int, int, int, int, int],
                    seed: int = 0) -> Dict:
    """GFLOPs, parameters and kept tokens of ``backbone`` on one view.

    Args:
        backbone (nn.Module): A built backbone, in eval mode or not.
        shape (tuple[int]): (1, C, T, H, W) of the view.
        seed (int): Seed of the random view; selections depend on content but
            token counts and FLOPs do not. Defaults to 0.

    The counting forward leaves torch's global RNG as it was (it is forked),
    so a test run draws the same keep sets with or without the report; a
    seeded ``'random'`` strategy draws from generators of each clip's own,
    which no other forward touches.

    Returns:
        dict: ``gflops``, ``params_m``, ``tokens`` (list, for this view's
        shape, see :func:`view_token_counts`; empty for backbones that do
        not prune) and ``unsupported`` ops.
    """
    was_training = backbone.training
    backbone.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(backbone.parameters()).device
    view = torch.randn(shape, generator=gen).to(device)
    cuda = [device] if device.type == 'cuda' else []
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        counted = count_flops(backbone, (view, ))
    backbone.train(was_training)
    return dict(
        gflops=counted['flops'] / 1e9,
        params_m=sum(p.numel() for p in backbone.parameters()) / 1e6,
        tokens=view_token_counts(backbone, shape),
        unsupported=counted['unsupported'])


def analytic_vit_flops(embed_dims: int,
                       depth: int,
                       num_heads: int,
                       tokens_per_slice: int,
                       num_slices: int,
                       drop_number: int = 0,
                       mlp_ratio: float = 4.,
                       patch_size: int = 16,
                       tubelet_size: int = 2,
                       in_channels: int = 3) -> float:
    """Multiply-adds of an (STA-pruned) VideoMAE ViT, by hand.

    An independent count (in the spirit of nanoGPT's estimate) to cross-check
    fvcore's trace: linear layers, the two attention matmuls, and STA's key
    similarities and accumulation at each prune point. Norms and
    element-wise ops are left out, so it sits a fraction of a percent under
    fvcore.

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

    Returns:
        float: FLOPs (multiply-adds).
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
            size = n // g
            half = size // 2
            flops += (size - half) * half * key_dims  # parity matching
            src = size  # the first group passes all its tokens on
            for _ in range(g - 1):
                flops += src * size * key_dims + src * size  # cos, w @ P
                src = size - drop_number
            seen += 1
    return float(flops)
