"""Today's full-window path of STASwin3D, kept as the tests' reference.

A frozen copy of ``sta_mmaction/models/swin_layers.py`` at commit 32e4fe5
(before the query tiles): window attention on full windows, the kept
tokens' qkv scattered in, pruned keys masked, pruned queries computed and
dropped. ``forward_pruned`` runs :meth:`STASwin3D.forward_pruned` with its
stage functions.
"""
from typing import Dict, List, Optional, Sequence, Tuple
from unittest import mock

import torch
import torch.nn.functional as F
from mmaction.models.backbones.swin import (BasicLayer,
                                            SwinTransformerBlock3D,
                                            compute_mask, get_window_size)
from torch import Tensor

from sta_mmaction.core import (Generators, ceil_div, gather_tokens,
                               scatter_tokens)
from sta_mmaction.models import STASwin3D, sta_swin
from sta_mmaction.models.swin_layers import (PRUNED_KEY_BIAS,
                                             select_with_keys)


class KeptWindows:
    """Where a stage's kept tokens sit in its (padded, shifted) windows.

    Computed once per stage, so the blocks scatter their qkv straight into
    the windows and gather their outputs straight out.

    Args:
        pos (Tensor): (B, M) kept positions in the flat ``D*H*W`` grid.
        dhw (tuple[int]): ``(D, H, W)`` of the stage.
    """

    def __init__(self, pos: Tensor, dhw: Tuple[int, int, int]) -> None:
        self.pos = pos
        self.dhw = dhw
        self._cache: Dict[tuple, Tuple[Tensor, Tensor]] = {}

    def padded_shape(self, window_size: Sequence[int]) -> Tuple[int, ...]:
        return tuple(ceil_div(n, w) * w for n, w in zip(self.dhw, window_size))

    def _slot(self, pos: Tensor, window_size: Sequence[int],
              shift_size: Sequence[int]) -> Tensor:
        """Flat grid positions -> index in the (nW * N) windowed layout.

        ``torch.roll`` by ``-shift`` moves ``p`` to ``p - shift``; windows,
        then positions in a window, are time-major (``window_partition``).
        """
        _, h, w = self.dhw
        dp, hp, wp = self.padded_shape(window_size)
        wd, wh, ww = window_size
        sd, sh, sw = shift_size
        d_i = (pos // (h * w) - sd) % dp
        h_i = (pos // w % h - sh) % hp
        w_i = (pos % w - sw) % wp
        win = (d_i // wd * (hp // wh) + h_i // wh) * (wp // ww) + w_i // ww
        off = (d_i % wd * wh + h_i % wh) * ww + w_i % ww
        return win * (wd * wh * ww) + off

    def windows(self, window_size: Sequence[int], shift_size: Sequence[int],
                mask_matrix: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """(B, M) slots of the kept tokens and the (B*nW, 1, N, N) mask.

        :data:`PRUNED_KEY_BIAS` on pruned keys and, where the block shifts,
        across shifted-window regions, where stock's -100 gives subnormal
        weights that slow the matmul several times on x86 CPUs. Padding
        stays a key, as in stock, where it holds ``qkv(0)``.
        """
        key = (tuple(window_size), tuple(shift_size))
        if key not in self._cache:
            d, h, w = self.dhw
            dp, hp, wp = self.padded_shape(window_size)
            n = window_size[0] * window_size[1] * window_size[2]
            b = self.pos.shape[0]
            device = self.pos.device
            slot = self._slot(self.pos, window_size, shift_size)  # (B, M)
            real = self._slot(torch.arange(d * h * w, device=device),
                              window_size, shift_size)  # (D*H*W, )
            pruned = torch.zeros(
                b, dp * hp * wp, dtype=torch.bool, device=device)
            pruned[:, real] = True
            pruned = pruned.scatter(1, slot,
                                    torch.zeros_like(slot, dtype=torch.bool))
            bias = torch.zeros(b, dp * hp * wp, device=device)
            bias = bias.masked_fill(pruned, PRUNED_KEY_BIAS)
            bias = bias.view(-1, 1, 1, n)  # (B*nW, 1, 1, N)
            if mask_matrix is not None and any(i > 0 for i in shift_size):
                nw = mask_matrix.shape[0]
                shift = torch.where(mask_matrix < 0, PRUNED_KEY_BIAS,
                                    0.).to(bias.dtype)  # (nW, N, N)
                bias = (bias.view(b, nw, 1, n) +
                        shift.unsqueeze(0)).view(-1, 1, n, n)
            self._cache[key] = (slot, bias)
        return self._cache[key]


def window_attention_core(blk: SwinTransformerBlock3D, windows: Tensor,
                          mask: Tensor, fused: bool = False) -> Tensor:
    """(B*nW, N, 3C) windowed qkv -> (B*nW, N, C) attention, before proj.

    A copy of ``WindowAttention3D.forward`` from mmaction 1.2.0 that starts
    from an already computed qkv, stops before the output projection, and
    takes one additive mask (shifted windows and pruned keys together).

    Args:
        blk (SwinTransformerBlock3D): The block.
        windows (Tensor): (B*nW, N, 3C) its qkv in windows.
        mask (Tensor): (B*nW, 1, N or 1, N) :meth:`KeptWindows.windows`.
        fused (bool): Attend with ``F.scaled_dot_product_attention``, bias
            and ``mask`` summed. Defaults to False, the explicit matmuls.
    """
    attn = blk.attn
    B_, N, C3 = windows.shape
    C = C3 // 3
    # --- STA: qkv was computed on the kept tokens and scattered ---
    qkv = windows.reshape(B_, N, 3, attn.num_heads,
                          C // attn.num_heads).permute(2, 0, 3, 1, 4)
    # --- end STA ---
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B_, nH, N, C / nH)
    relative_position_bias = attn.relative_position_bias_table[
        attn.relative_position_index[:N, :N].reshape(-1)].reshape(
            N, N, -1)  # (N, N, nH)
    relative_position_bias = relative_position_bias.permute(
        2, 0, 1).contiguous()  # (nH, N, N)
    # --- STA: fused attention with bias, shift and pruned keys as one mask
    if fused:
        bias = relative_position_bias.unsqueeze(0).to(q.dtype) + mask.to(
            q.dtype)  # (B_, nH, N, N)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias,
            dropout_p=attn.attn_drop.p if attn.training else 0.,
            scale=attn.scale)  # (B_, nH, N, C / nH)
        return out.transpose(1, 2).reshape(B_, N, C)  # (B_, N, C)
    # --- end STA ---
    q = q * attn.scale
    a = q @ k.transpose(-2, -1)  # (B_, nH, N, N)
    a = a + relative_position_bias.unsqueeze(0)  # (B_, nH, N, N)
    # --- STA: one mask for shifted windows and pruned keys, in place ---
    a += mask.to(a.dtype)  # (B_, 1, N or 1, N) broadcast
    # --- end STA ---
    a = attn.softmax(a)
    a = attn.attn_drop(a)
    return (a @ v).transpose(1, 2).reshape(B_, N, C)  # (B_, N, C)


def block_forward_kept(blk: SwinTransformerBlock3D, x: Tensor,
                       grid: KeptWindows, mask_matrix: Tensor,
                       qkv: Optional[Tensor] = None,
                       fused: bool = False) -> Tensor:
    """(B, M, C) kept tokens -> ``SwinTransformerBlock3D.forward`` on them.

    A copy of ``SwinTransformerBlock3D.forward`` (with ``forward_part1``)
    from mmaction 1.2.0: only the attention sees the full windows, scattered
    and gathered in place of stock's pad / roll / partition; ``with_cp`` is
    not honoured.

    Args:
        blk (SwinTransformerBlock3D): The block.
        x (Tensor): (B, M, C) kept tokens.
        grid (KeptWindows): Their positions.
        mask_matrix (Tensor): The stage's shifted-window mask.
        qkv (Tensor, optional): (B, M, 3C) their qkv. Defaults to None.
        fused (bool): See :func:`window_attention_core`. Defaults to False.
    """
    B, M, C = x.shape
    window_size, shift_size = get_window_size(grid.dhw, blk.window_size,
                                              blk.shift_size)
    shortcut = x
    # --- STA: qkv on kept tokens, scattered into the windows ---
    if qkv is None:
        qkv = blk.attn.qkv(blk.norm1(x))  # (B, M, 3C)
    slot, mask = grid.windows(window_size, shift_size, mask_matrix)
    n = window_size[0] * window_size[1] * window_size[2]
    bias = blk.attn.qkv.bias
    if bias is None:
        fill = qkv.new_zeros(3 * C)
    else:  # stock pads after norm1, so padding holds qkv(0) = bias
        fill = bias.to(qkv.dtype)
    windows = fill.expand(B, mask.shape[0] // B * n, 3 * C).contiguous()
    scatter_tokens(windows, slot, qkv)  # (B, nW*N, 3C)
    out = window_attention_core(blk, windows.view(-1, n, 3 * C), mask,
                                fused)  # (B*nW, N, C)
    out = gather_tokens(out.view(B, -1, C), slot)  # (B, M, C)
    out = blk.attn.proj_drop(blk.attn.proj(out))  # (B, M, C)
    # --- end STA ---
    x = shortcut + blk.drop_path(out)
    x = x + blk.forward_part2(x)  # (B, M, C)
    return x


def stage_window_mask(layer: BasicLayer, dhw: Tuple[int, int, int],
                      device: torch.device) -> Tensor:
    """(nW, N, N) shifted-window mask of a stage on a ``(D, H, W)`` grid.

    The preamble of ``BasicLayer.forward`` (mmaction 1.2.0):
    ``compute_mask`` (0 within a region, -100 across) on the grid padded to
    whole windows, cut down by ``get_window_size`` as each block does.
    """
    window_size, shift_size = get_window_size(dhw, layer.window_size,
                                              layer.shift_size)
    dp, hp, wp = (ceil_div(n, s) * s for n, s in zip(dhw, window_size))
    return compute_mask(dp, hp, wp, window_size, shift_size, device)


def stage_forward_kept(layer: BasicLayer, tokens: Tensor, pos: Tensor,
                       dhw: Tuple[int, int, int], point: Dict[str, int],
                       reverse: bool, strategy: str, generator: Generators,
                       fused: bool = False) -> Tuple[Tensor, Tensor]:
    """(B, N, C) candidates -> kept tokens' stage output (B, M, C), positions.

    Args:
        layer (BasicLayer): The stage.
        tokens (Tensor): (B, N, C) candidate tokens.
        pos (Tensor): (B, N) their positions in the stage's flat grid.
        dhw (tuple[int]): ``(D, H, W)`` of the stage.
        point (dict): The stage's entry of ``swin_schedule``.
        reverse (bool): Visit the groups in reverse time order.
        strategy (str): The backbone's strategy.
        generator (Generators): The ``'random'`` strategy's generators.
        fused (bool): See :func:`window_attention_core`. Defaults to False.
    """
    attn_mask = stage_window_mask(layer, dhw, tokens.device)
    tokens, pos, qkv = select_with_keys(layer.blocks[0], tokens, pos, point,
                                        reverse, strategy, generator)
    grid = KeptWindows(pos, dhw)
    for i, blk in enumerate(layer.blocks):
        tokens = block_forward_kept(blk, tokens, grid, attn_mask,
                                    qkv if i == 0 else None, fused)
    return tokens, pos


def layer_forward_fused(layer: BasicLayer, x: Tensor,
                        do_downsample: bool = True) -> Tensor:
    """(B, C, D, H, W) -> ``BasicLayer.forward``, with fused attention.

    Each block is :func:`block_forward_kept` with every position kept and
    ``fused=True``: stock's outputs to float rounding, (B, D, H, W, C) or,
    downsampled, (B, D, H/2, W/2, 2C).

    Args:
        layer (BasicLayer): The stage.
        x (Tensor): (B, C, D, H, W) its input.
        do_downsample (bool): Apply the patch merging. Defaults to True.
    """
    b, c, d, h, w = x.shape
    attn_mask = stage_window_mask(layer, (d, h, w), x.device)
    tokens = x.flatten(2).transpose(1, 2)  # (B, D*H*W, C)
    pos = torch.arange(d * h * w, device=x.device).expand(b, -1)
    grid = KeptWindows(pos, (d, h, w))
    for blk in layer.blocks:
        tokens = block_forward_kept(blk, tokens, grid, attn_mask, fused=True)
    x = tokens.view(b, d, h, w, c)
    if layer.downsample is not None and do_downsample:
        x = layer.downsample(x)
    return x


def forward_pruned(model: STASwin3D, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
    """:meth:`STASwin3D.forward_pruned` of commit 32e4fe5, on full windows:
    today's forward with this module's stage functions in place of the
    query tiles'."""
    with mock.patch.object(sta_swin, 'stage_forward_kept',
                           stage_forward_kept), \
            mock.patch.object(sta_swin, 'layer_forward_fused',
                              layer_forward_fused):
        return model.forward_pruned(x)
