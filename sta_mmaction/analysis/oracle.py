"""Oracles: the STA backbones' blocks on STA's token counts, no selection.

An oracle runs the same blocks, in the same attention path (explicit or
fused), on exactly the token counts that STA keeps at every prune point,
but chooses the survivors by position instead of by score: at each prune
point every group simply keeps its first ``kept`` tokens (a slice, no
scoring, no gather by score). Its time is what pruning to those counts
costs at the least, so STA's time over its oracle's is the price of the
selection itself.

* ViT (:func:`vit_oracle`): after the prune blocks, each of the ``g``
  consecutive groups of the schedule keeps its first ``n - r`` tokens.
* Video Swin (:func:`swin_oracle`): stage 1 in full, then at stages 2-4 each
  group keeps its first ``kept`` candidates, and the blocks run on them
  through the same kept-token windows (scatter into full windows, masked
  pruned keys, gather out) and the same carry through the patch merging as
  STA. What is left out is STA's scoring: the key projection of the dropped
  candidates and the rule. The windows and the carry stay, because any
  kept set needs them in this layout, so the Swin oracle measures the
  selection's price, not a cheaper layout.

The features differ from STA's (other tokens survive); shapes and token
counts are STA's.
"""
from typing import Callable, List, Tuple

import torch
from mmaction.models.backbones.swin import compute_mask, get_window_size
from torch import Tensor

from ..core import ceil_div, group_schedule
from ..models import STASwin3D, STAViT
from ..models.sta_vit import block_with_keys
from ..models.swin_layers import (KeptWindows, block_forward_kept,
                                  layer_forward_fused, merge_kept)


def _first_per_group(x: Tensor, groups: int, kept: int) -> Tensor:
    """(B, N, ...) -> (B, groups * kept, ...): each consecutive group's
    first ``kept`` entries."""
    b, n = x.shape[:2]
    return x.reshape(b, groups, n // groups,
                     *x.shape[2:])[:, :, :kept].reshape(
                         b, groups * kept, *x.shape[2:])


def _check_selects(model: STAViT) -> None:
    if model.strategy == 'tome' and model.drop_number:
        raise ValueError("vit_oracle: strategy='tome' merges tokens rather "
                         'than selecting them; the oracle slices. Use a '
                         'selecting strategy (e.g. the default sta).')


def _check_pruned(model: STASwin3D) -> None:
    if not model.drop_number:
        raise ValueError('swin_oracle: drop_number=0 prunes nothing, so the '
                         'oracle is the unpruned forward; time that.')


def vit_oracle(model: STAViT, x: Tensor) -> Tuple[Tensor, List[int]]:
    """(B, C, T, H, W) -> features (B, C') and tokens after each point.

    ``STAViT.forward_pruned`` with the selection replaced by a slice; the
    blocks run as there (the stock block where STA needs no keys,
    :func:`~sta_mmaction.models.sta_vit.block_with_keys` where it does or
    where the attention is fused). Mean pooling, as STA's.

    Args:
        model (STAViT): The backbone (its ``drop_number`` and
            ``fused_attention`` are used; ``strategy`` must not be
            ``'tome'``, whose merging is not a selection).
        x (Tensor): (B, C, T, H, W) clip.

    Returns:
        tuple: ``(B, C')`` features and the per-clip token count after
        each prune point.
    """
    _check_selects(model)
    model._check_input(x)
    x = model.embed_tokens(x)  # (B, N, C)
    groups = group_schedule(model.num_frames // model.tubelet_size)
    point = dict(zip(model.prune_layers, groups))
    fused = model.fused_attention
    counts = []
    for i, blk in enumerate(model.blocks):
        if i not in point:
            x = block_with_keys(blk, x, None, True)[0] if fused else blk(x)
            continue
        x = block_with_keys(blk, x, None, fused)[0]  # (B, N, C)
        g = point[i]
        x = _first_per_group(x, g, x.shape[1] // g - model.drop_number)
        counts.append(x.shape[1])
    x = model.norm(x)
    return model.fc_norm(x.mean(1)), counts


def swin_oracle(model: STASwin3D, x: Tensor) -> Tuple[Tensor, List[int]]:
    """(B, C, T, H, W) -> features (B, C', 1, 1, 1) and tokens per stage.

    ``STASwin3D.forward_pruned`` with each stage's selection replaced by
    the first ``kept`` candidates of every group (see the module doc).

    Args:
        model (STASwin3D): The backbone, ``drop_number > 0``.
        x (Tensor): (B, C, T, H, W) clip.

    Returns:
        tuple: the ``(B, C', 1, 1, 1)`` mean of the kept, normed stage-4
        tokens and the per-clip token count of stages 2, 3 and 4.
    """
    _check_pruned(model)
    points = model._check_input(x)
    fused = model.fused_attention
    x = model.pos_drop(model.patch_embed(x))
    first = model.layers[0]
    if fused:
        x = layer_forward_fused(first, x.contiguous(), False)
    else:
        x = first(x.contiguous(), do_downsample=False)  # (B, D, H, W, C)
    x = first.downsample(x)  # (B, D, H2, W2, 2C)
    b, d, h, w, c = x.shape
    grid_in = x.reshape(b, d * h * w, c)
    tokens = grid_in  # (B, N2, C2)
    pos = torch.arange(d * h * w, device=x.device).expand(b, -1)
    counts = []
    for p, layer in enumerate(model.layers[1:]):
        if p > 0:
            tokens, pos, grid_in, (d, h, w) = merge_kept(
                model.layers[p].downsample, grid_in, tokens, pos, (d, h, w),
                points[p - 1]['groups'], points[p]['carried'])
        groups, kept = points[p]['groups'], points[p]['kept']
        tokens = _first_per_group(tokens, groups, kept)  # (B, M, C)
        pos = _first_per_group(pos, groups, kept)  # (B, M)
        window_size, shift_size = get_window_size((d, h, w),
                                                  layer.window_size,
                                                  layer.shift_size)
        dp, hp, wp = (ceil_div(n, s) * s
                      for n, s in zip((d, h, w), window_size))
        mask = compute_mask(dp, hp, wp, window_size, shift_size, x.device)
        grid = KeptWindows(pos, (d, h, w))
        for blk in layer.blocks:
            tokens = block_forward_kept(blk, tokens, grid, mask, fused=fused)
        counts.append(tokens.shape[1])
    out = getattr(model, f'norm{model.num_layers - 1}')(tokens).mean(1)
    return out[:, :, None, None, None], counts


def oracle_of(model) -> Callable[[Tensor], Tensor]:
    """The oracle forward of an STA backbone, as a callable of the clip.

    A model the oracle cannot run (ToMe's merging, a Swin at r=0) is
    refused here, before any clip is timed.

    Args:
        model (STAViT or STASwin3D): A pruned STA backbone.

    Returns:
        Callable: clip -> features, the oracle at the model's settings.
    """
    if isinstance(model, STAViT):
        _check_selects(model)
        return lambda x: vit_oracle(model, x)[0]
    if isinstance(model, STASwin3D):
        _check_pruned(model)
        return lambda x: swin_oracle(model, x)[0]
    raise ValueError(f'no oracle for a {type(model).__name__}; the oracles '
                     'run STAViT and STASwin3D.')
