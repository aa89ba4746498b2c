"""The layers of STASwin3D's pruned forward: kept tokens in Video Swin.

The paper (Ding et al., ICCV 2023) applies STA to Video Swin but never
released that code; this design is fitted to its GFLOPs table. Window
attention runs on full windows, pruned keys masked out, while the per-token
layers (qkv, projection, MLP, patch-merging reduction) run on the kept
tokens only, by gather and scatter, so neither fvcore nor the clock sees
work that is not done. On CPUs the attention and the full stage 1 keep the
speed-up below the FLOPs ratio (``tools/analysis_tools/benchmark.py``).

Schedule (:func:`sta_mmaction.core.swin_schedule`): before stages 2, 3 and
4, groups of 1, 2 and 4 temporal slices lose ``r``, ``r // 4`` and
``r // 16`` tokens each (the middle point in reverse time order). The patch
merging carries the kept set on: each group passes on ``ceil(k / 4)`` merged
tokens for its ``k`` kept ones, at the 2x2 positions with the most kept
children (ties: the larger sum of ``|x|``), so every stage is priced by one
rule. STA scores the stage input with the first block's own keys
``W_k norm1(x) + b_k``, averaged over heads and reused by the block
(:func:`select_with_keys`).

A pruned position's keys get :data:`PRUNED_KEY_BIAS` and its attention
output is discarded (:class:`KeptWindows`); in patch merging it holds its
last features, or zeros where the previous carry dropped it
(:func:`merge_kept`), so a kept merged vector looks like stock's.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmaction.models.backbones.swin import (BasicLayer, PatchMerging,
                                            SwinTransformerBlock3D,
                                            compute_mask, get_window_size)
from torch import Tensor
from torch.profiler import record_function

from ..core import (NEEDS_KEYS, Generators, ceil_div, gather_tokens,
                    scatter_tokens, select_tokens)

#: Logit added to pruned keys. A row that holds any kept key gives them
#: exactly zero weight (``exp`` underflows); a row without one (a pruned
#: query, whose output is discarded) stays finite, where ``-inf`` would give
#: NaN. It is finite in fp16 too.
PRUNED_KEY_BIAS = -1e4


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


@record_function('window_attention_core')  # for the speed breakdown
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


def select_with_keys(
        blk: SwinTransformerBlock3D, tokens: Tensor, pos: Tensor,
        point: Dict[str, int], reverse: bool, strategy: str,
        generator: Generators) -> Tuple[Tensor, Tensor, Tensor]:
    """(B, N, C) candidates -> kept (B, M, C), positions, first block's qkv.

    ``strategy`` on the first block's keys where it reads them
    (:data:`~sta_mmaction.core.NEEDS_KEYS`); else the keys are projected
    for the kept tokens only. Arguments as for :func:`stage_forward_kept`;
    ``blk`` is the stage's first block.
    """
    attn = blk.attn
    b, n, c = tokens.shape
    w_q, w_k, w_v = attn.qkv.weight.chunk(3)  # (C, C) each
    if attn.qkv.bias is None:
        b_q = b_k = b_v = None
    else:
        b_q, b_k, b_v = attn.qkv.bias.chunk(3)
    scored = strategy in NEEDS_KEYS
    keys = None
    if scored:
        normed = blk.norm1(tokens)  # (B, N, C)
        k = F.linear(normed, w_k, b_k)  # (B, N, C), all candidates
        keys = k.view(b, n, attn.num_heads, -1).mean(2)  # (B, N, C / nH)
    idx = select_tokens(tokens, keys, point['groups'], point['drop'],
                        reverse=reverse, strategy=strategy,
                        generator=generator)  # (B, M)
    tokens = gather_tokens(tokens, idx)  # (B, M, C)
    if scored:
        normed = gather_tokens(normed, idx)  # (B, M, C)
        k = gather_tokens(k, idx)  # (B, M, C)
    else:
        normed = blk.norm1(tokens)  # (B, M, C)
        k = F.linear(normed, w_k, b_k)  # (B, M, C), kept only
    q = F.linear(normed, w_q, b_q)  # (B, M, C), kept only
    v = F.linear(normed, w_v, b_v)  # (B, M, C), kept only
    qkv = torch.cat([q, k, v], dim=-1)  # (B, M, 3C)
    return tokens, pos.gather(1, idx), qkv


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


@record_function('layer_forward_fused')  # for the speed breakdown
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


def merge_kept(
    merge: PatchMerging, grid_in: Tensor, tokens: Tensor, pos: Tensor,
    dhw: Tuple[int, int, int], groups: int, carried: int
) -> Tuple[Tensor, Tensor, Tensor, Tuple[int, int, int]]:
    """Patch merging on the carried positions only.

    A copy of ``PatchMerging.forward`` from mmaction 1.2.0.

    Args:
        merge (PatchMerging): The stage's downsample layer.
        grid_in (Tensor): (B, D*H*W, C) the stage input.
        tokens (Tensor): (B, M, C) kept tokens after the stage's blocks.
        pos (Tensor): (B, M) their positions.
        dhw (tuple[int]): ``(D, H, W)`` of the stage.
        groups (int): Groups of the stage's prune point.
        carried (int): Merged tokens each group passes on.

    Returns:
        tuple: merged tokens (B, groups*carried, 2C), their positions, the
        next stage's input grid and its ``(D, H/2, W/2)``.
    """
    # --- STA: the stage's grid from its input and the kept tokens ---
    B, M, C = tokens.shape
    D, H, W = dhw
    x = scatter_tokens(
        grid_in.to(tokens.dtype, copy=True), pos, tokens)  # (B, DHW, C)
    x = x.view(B, D, H, W, C)
    kept = torch.zeros(B, D * H * W, device=x.device)
    kept = kept.scatter(1, pos, torch.ones_like(pos, dtype=kept.dtype))
    kept = kept.view(B, D, H, W)  # 1 at kept positions
    with torch.autocast(device_type=x.device.type, enabled=False):
        act = x.abs().sum(-1, dtype=torch.float32) * kept  # (B, D, H, W)
    # --- end STA ---
    # padding
    pad_input = (H % 2 == 1) or (W % 2 == 1)
    if pad_input:
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        # --- STA: pad the kept mask and activations alike ---
        kept = F.pad(kept, (0, W % 2, 0, H % 2))
        act = F.pad(act, (0, W % 2, 0, H % 2))
        # --- end STA ---

    # --- STA: carry the merged positions with the most kept children ---
    _, _, hp, wp, _ = x.shape
    h2, w2 = hp // 2, wp // 2
    n = D // groups * h2 * w2  # merged positions per group
    children = ((0, 0), (1, 0), (0, 1), (1, 1))  # x0, x1, x2, x3
    count = sum(kept[:, :, i::2, j::2] for i, j in children)
    score = sum(act[:, :, i::2, j::2] for i, j in children)
    order = torch.argsort(
        score.view(B, groups, n), dim=-1, descending=True, stable=True)
    by_count = torch.argsort(count.view(B, groups, n).gather(-1, order),
                             dim=-1, descending=True, stable=True)
    top = order.gather(-1, by_count)[..., :carried]  # (B, G, carried)
    top = top.sort(dim=-1).values  # raster order inside a group
    offset = torch.arange(groups, device=x.device).unsqueeze(-1) * n
    new_pos = (top + offset).flatten(1)  # (B, M'), in D x h2 x w2
    d_i = new_pos // (h2 * w2)
    h_i = new_pos // w2 % h2
    w_i = new_pos % w2
    flat = x.reshape(B, D * hp * wp, C)
    x = torch.cat([
        gather_tokens(flat, (d_i * hp + 2 * h_i + i) * wp + 2 * w_i + j)
        for i, j in children
    ], -1)  # (B, M', 4C), as x0, x1, x2, x3
    # --- end STA ---
    x = merge.norm(x)
    x = merge.reduction(x)  # (B, M', 2C)
    # --- STA: the next stage's input grid, for its own carry ---
    grid_next = scatter_tokens(
        x.new_zeros(B, D * h2 * w2, x.shape[-1]), new_pos, x)
    # --- end STA ---
    return x, new_pos, grid_next, (D, h2, w2)
