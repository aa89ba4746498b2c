"""The layers of STASwin3D's pruned forward: kept tokens in Video Swin.

The paper (Ding et al., ICCV 2023) applies STA to Video Swin but never
released that code; ours costs fewer GFLOPs than its table wherever it
prunes (docs/swin_design.md). Every layer of a pruned stage runs on the kept
tokens only. Per-token layers (qkv, projection, MLP, patch-merging
reduction) take them by gather. Window attention takes them in *query
tiles* (:class:`KeptTiles`): each window's kept tokens, in window order,
fill tiles of ``T`` query slots; the relative position bias is read at the
tiles' query offsets. A window of ``k`` kept tokens fills ``ceil(k / T)``
tiles, so :func:`query_tiles` bounds a clip's tiles by its kept count
whatever their positions. A tile's keys are its window's kept (and
padding) positions, packed and bucketed by count (:func:`pack_keys`), in
eager CPU forwards; where shapes must follow from the view and ``r`` alone
(graph captures: fvcore counts them, ``torch.compile`` and ``torch.export``
take them; accelerators, which would sync to size the buckets) they are
the window's ``N`` positions, pruned ones masked (:func:`packs_keys`).
Attention then costs at most ``2 M N C`` for ``M`` kept tokens instead of
``2 P N C`` over the ``P`` positions of full windows, and with packed keys
about ``2 sum_w k_w^2 C``.

Schedule (:func:`sta_mmaction.core.swin_schedule`): before stages 2, 3 and
4, groups of 1, 2 and 4 temporal slices lose ``r``, ``r // 4`` and
``r // 16`` tokens each (the middle point in reverse time order). The patch
merging carries the kept set on: each group passes on ``ceil(k / 4)`` merged
tokens for its ``k`` kept ones, at the 2x2 positions with the most kept
children (ties: the larger sum of ``|x|``), so every stage is priced by one
rule. STA scores the stage input with the first block's own keys
``W_k norm1(x) + b_k``, averaged over heads and reused by the block
(:func:`select_with_keys`). In patch merging a pruned position holds its
last features, or zeros where the previous carry dropped it
(:func:`merge_kept`), so a kept merged vector looks like stock's.

Full windows (stage 1; every stage of the fused forward at ``r = 0``) go
through ``scaled_dot_product_attention`` with the block's ``(heads, N, N)``
bias broadcast over windows; a shifted block attends once per kind of
window (:func:`window_kinds`), each kind with its own ``(N, N)`` shift mask,
so no block builds a ``(B*nW, heads, N, N)`` tensor. Masks use
:data:`PRUNED_KEY_BIAS`, where stock's -100 gives subnormal weights that
slow the matmuls several times on x86 CPUs; the geometry behind them is
cached per stage and view (:func:`window_geometry`).
"""
import math
from contextlib import contextmanager
from functools import lru_cache
from itertools import product
from typing import (Dict, Iterator, List, NamedTuple, Optional, Sequence,
                    Tuple)

import torch
import torch.nn.functional as F
from einops import rearrange
from mmaction.models.backbones.swin import (BasicLayer, PatchMerging,
                                            SwinTransformerBlock3D,
                                            WindowAttention3D, compute_mask,
                                            get_window_size,
                                            window_partition, window_reverse)
from torch import Tensor
from torch.profiler import record_function

from ..core import (NEEDS_KEYS, Generators, ceil_div, gather_tokens,
                    scatter_tokens, select_tokens)

#: Logit of a masked key: pruned, or across shifted-window regions. A row
#: that holds any allowed key gives it exactly zero weight (``exp``
#: underflows); a row without one (an empty query slot, whose output is
#: discarded) stays finite, where ``-inf`` would give NaN. Finite in fp16.
PRUNED_KEY_BIAS = -1e4

#: Query slots per tile of the kept-token attention, ``T``. Smaller tiles
#: waste fewer slots (at most ``T - 1`` per window); on CPUs the attention
#: kernel runs tiles of 32 to 64 queries at about the speed per score of
#: whole 8x7x7 windows.
QUERY_TILE = 32

#: Elements per temporary of the tile attention (16 MiB in float32): below
#: glibc's 32 MiB mmap threshold, so chunks reuse memory on CPUs.
CHUNK = 1 << 22


def query_tiles(kept: int, windows: int, window_numel: int,
                tile: Optional[int] = None) -> Tuple[int, int]:
    """``(T, Q)``: query slots per tile and tiles per clip, as a bound.

    A window holding ``k >= 1`` kept tokens fills ``ceil(k / T)`` tiles, at
    most ``1 + (k - 1) // T``; summed, ``kept`` tokens in ``windows``
    windows fill at most ``windows + (kept - windows) // T`` tiles, and no
    window more than ``ceil(N / T)``, wherever the tokens sit. Where that
    bound gives no fewer slots than the windows hold, a tile is a window
    (``T = N``, ``Q = windows``).

    Args:
        kept (int): Kept tokens of a clip, ``M``.
        windows (int): Windows of its (padded) grid, ``nW``.
        window_numel (int): Positions per window, ``N``.
        tile (int, optional): ``T`` before the bound. Defaults to None,
            :data:`QUERY_TILE`.
    """
    t = min(tile or QUERY_TILE, window_numel)
    tiles = min(kept, windows) + max(kept - windows, 0) // t
    tiles = min(tiles, windows * ceil_div(window_numel, t))
    if tiles * t >= windows * window_numel:
        return window_numel, windows
    return t, tiles


def query_slots(dhw: Sequence[int], window_size: Sequence[int],
                kept: Optional[int] = None) -> int:
    """Query slots of a stage's window attention, per clip.

    Every position of its (padded) windows, or for ``kept`` tokens the
    ``Q * T`` of their tiles (:func:`query_tiles`); each slot attends to
    the ``N`` positions of its window.

    Args:
        dhw (Sequence[int]): ``(D, H, W)`` of the stage.
        window_size (Sequence[int]): Its blocks' window.
        kept (int, optional): Kept tokens of a pruned stage. Defaults to
            None, nothing pruned.
    """
    window = get_window_size(tuple(dhw), window_size)
    windows = math.prod(ceil_div(n, w) for n, w in zip(dhw, window))
    if kept is None:
        return windows * math.prod(window)
    return math.prod(query_tiles(kept, windows, math.prod(window)))


class WindowGeometry(NamedTuple):
    """Where a grid's positions sit in its (padded, shifted) windows."""
    #: (D*H*W, ) window slot ``window * N + offset`` of each grid position.
    slot: Tensor
    #: (nW * N, ) True at slots of grid positions, False at padding.
    real: Tensor
    #: (nW, N, N) stock's shifted-window mask (``compute_mask``), or None.
    shift: Optional[Tensor]
    #: (nW, N) region of each window slot (its region's first offset), or
    #: None: two slots may attend to each other iff their regions agree.
    region: Optional[Tensor]


@lru_cache(maxsize=None)
def window_geometry(dhw: Tuple[int, int, int], window_size: Tuple[int, ...],
                    shift_size: Tuple[int, ...],
                    device: torch.device) -> WindowGeometry:
    """The :class:`WindowGeometry` of a ``(D, H, W)`` grid, once per view.

    Stock's own steps (mmaction 1.2.0) on position indices: the grid padded
    to whole windows (padding ``-1``), rolled by ``-shift`` and cut by
    ``window_partition``.
    """
    d, h, w = dhw
    padded = tuple(ceil_div(n, s) * s for n, s in zip(dhw, window_size))
    index = torch.full(padded, -1, dtype=torch.long, device=device)
    index[:d, :h, :w] = torch.arange(d * h * w, device=device).view(d, h, w)
    shift = None
    if any(s > 0 for s in shift_size):
        index = index.roll(tuple(-s for s in shift_size), (0, 1, 2))
        shift = compute_mask(*padded, window_size, shift_size, device)
    where = window_partition(index[None, ..., None], window_size).flatten()
    pads = where.numel() - d * h * w  # -1 (padding) sorts first
    slot = where.argsort(stable=True)[pads:]  # (D*H*W, )
    region = None if shift is None else (shift == 0).int().argmax(-1)
    return WindowGeometry(slot, where >= 0, shift, region)


@lru_cache(maxsize=None)
def window_kinds(batch: int, dhw: Tuple[int, int, int],
                 window_size: Tuple[int, ...], shift_size: Tuple[int, ...],
                 device: torch.device
                 ) -> Tuple[Optional[Tensor], Tuple[int, ...],
                            Optional[Tensor]]:
    """Full windows grouped by their shift mask, once per batch and view.

    A window's shift mask depends only on whether it is the last along each
    shifted axis; each kind attends once.

    Returns:
        tuple: ``order`` (B*nW, ) of the windows kind by kind, windows per
        kind and the kinds' (kinds, N, N) masks (0 or
        :data:`PRUNED_KEY_BIAS`); without a shift None, (B*nW, ), None.
    """
    counts = [ceil_div(n, s) for n, s in zip(dhw, window_size)]
    n = counts[0] * counts[1] * counts[2]
    if not any(s > 0 for s in shift_size):
        return None, (batch * n, ), None
    # per axis: the windows before the last and the last, if it shifts
    spans = [((0, c - 1), (c - 1, c)) if s > 0 else ((0, c), )
             for c, s in zip(counts, shift_size)]
    grid = torch.arange(n, device=device).view(counts)
    clip = torch.arange(batch, device=device)[:, None] * n
    order, sizes, firsts = [], [], []
    for a, b, c in product(*spans):
        part = grid[a[0]:a[1], b[0]:b[1], c[0]:c[1]].flatten()
        order.append((clip + part).flatten())  # (B * windows, )
        sizes.append(batch * part.numel())
        firsts.append((a[0] * counts[1] + b[0]) * counts[2] + c[0])
    shift = window_geometry(dhw, window_size, shift_size, device).shift
    firsts = torch.tensor(firsts, device=device)  # one window per kind
    masks = torch.where(shift[firsts] < 0, PRUNED_KEY_BIAS, 0.)
    return torch.cat(order), tuple(sizes), masks  # masks: (kinds, N, N)


def relative_bias(attn: WindowAttention3D, n: int) -> Tensor:
    """(nH, N, N) relative position bias of a window of ``n`` positions.

    As ``WindowAttention3D.forward`` (mmaction 1.2.0) reads it.
    """
    bias = attn.relative_position_bias_table[
        attn.relative_position_index[:n, :n].reshape(-1)].reshape(n, n, -1)
    return bias.permute(2, 0, 1)  # (nH, N, N)


def _attend(attn: WindowAttention3D, q: Tensor, k: Tensor, v: Tensor,
            bias: Tensor, fused: bool) -> Tensor:
    """Softmax attention with an additive ``bias``; the explicit path as
    ``WindowAttention3D.forward``, the fused one by SDPA."""
    drop = attn.attn_drop.p if attn.training else 0.
    if fused:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop,
            scale=attn.scale)
    a = (q * attn.scale) @ k.transpose(-2, -1)
    a = attn.softmax(a + bias.to(a.dtype))
    return attn.attn_drop(a) @ v


class KeptTiles:
    """A stage's kept tokens in query tiles, for one window layout.

    Built once per stage and layout (the blocks alternate two), so a block
    only gathers: queries from :attr:`query_src`, keys and values from the
    rows of :attr:`packs` or, for whole windows, :attr:`key_src` (index
    ``M``: the fill row, ``qkv(0)``, which stock's padding holds), and its
    outputs back at :attr:`query_slot`. Where :func:`packs_keys` allows
    it, a tile's keys are packed: only its window's kept and padding
    positions, in buckets of ``L`` keys (:class:`KeyPack`).

    Args:
        pos (Tensor): (B, M) kept positions in the flat ``D*H*W`` grid.
        dhw (tuple[int]): ``(D, H, W)`` of the stage.
        window_size, shift_size (tuple[int]): The blocks' layout, as
            ``get_window_size`` gives it.
        packed_keys (bool, optional): Pack the keys. Defaults to None,
            :func:`packs_keys` on ``pos``'s device.
    """

    def __init__(self, pos: Tensor, dhw: Tuple[int, int, int],
                 window_size: Tuple[int, ...],
                 shift_size: Tuple[int, ...],
                 packed_keys: Optional[bool] = None) -> None:
        device = pos.device
        geo = window_geometry(tuple(dhw), tuple(window_size),
                              tuple(shift_size), device)
        b, m = pos.shape
        n = window_size[0] * window_size[1] * window_size[2]
        nw = geo.real.numel() // n
        t, q = query_tiles(m, nw, n)
        self.tile, self.tiles = t, q
        slot = geo.slot[pos]  # (B, M) window * N + offset
        win = slot // n  # (B, M)
        tokens = torch.arange(m, device=device).expand(b, m)
        if t == n:  # a tile is a window
            tile_win = torch.arange(nw, device=device).expand(b, nw)
            query_slot = slot
        else:  # window by window, T queries a tile, in window order
            count = torch.zeros(b, nw, dtype=torch.long, device=device)
            count = count.scatter_add(1, win, torch.ones_like(win))  # (B, nW)
            order = slot.argsort(1)  # (B, M) window-major
            win_sorted = win.gather(1, order)
            first = count.cumsum(1) - count  # (B, nW) first rank of a window
            rank = tokens - first.gather(1, win_sorted)  # (B, M) in-window
            fills = (count + t - 1) // t  # (B, nW) tiles per window
            end = fills.cumsum(1)  # (B, nW)
            tile_of = (end - fills).gather(1, win_sorted) + rank // t
            query_slot = torch.empty_like(slot).scatter(
                1, order, tile_of * t + rank % t)  # (B, M) in (Q*T)
            # spare tiles (a clip that fills fewer) go to the last window
            tile_win = (torch.arange(q, device=device)[:, None] >=
                        end[:, None, :]).sum(-1).clamp(max=nw - 1)  # (B, Q)
        at_slot = torch.full((b, nw * n), m, device=device).scatter(
            1, slot, tokens)  # (B, nW*N) kept token at a slot, else M
        query_src = torch.full((b, q * t), m, device=device).scatter(
            1, query_slot, tokens)  # (B, Q*T)
        offset = torch.zeros_like(query_src).scatter(1, query_slot,
                                                     slot % n)  # (B, Q*T)
        rows = torch.arange(b, device=device)[:, None] * (m + 1)
        #: (B*Q, T) rows of the queries in the (B*(M+1), 3C) qkv.
        self.query_src = (query_src + rows).view(b * q, t)
        #: (B, M) slot of each kept token in its clip's (Q*T) queries.
        self.query_slot = query_slot
        #: (B*Q, T) window offset of each query slot, for the bias rows.
        self.offset = offset.view(b * q, t)
        #: Positions per window, ``N``.
        self.window_numel = n
        #: (query, key) scores of full windows on these clips, per head.
        self.window_scores = b * nw * n * n
        if packed_keys is None:
            packed_keys = packs_keys(device)
        #: The tiles by their windows' key counts, or None: every tile
        #: attends to its window's ``N`` positions (:attr:`key_src`).
        self.packs = None
        #: (B*Q, N) rows of a tile's keys and values, or None (packed).
        self.key_src = None
        #: (B*Q, T or 1, 1, N) their mask, 0 or PRUNED_KEY_BIAS, or None.
        self.mask = None
        if packed_keys:
            allowed = (at_slot < m) | ~geo.real  # (B, nW*N) kept or padding
            self.packs = pack_keys(allowed.view(b, nw, n), at_slot, tile_win,
                                   self.query_src, self.offset, geo.region,
                                   t, m)
        else:
            keys = (tile_win * n)[..., None] + torch.arange(n, device=device)
            keys = keys.flatten(1)  # (B, Q*N) window slots of tiles' keys
            key_src = at_slot.gather(1, keys)  # (B, Q*N)
            # allowed keys: kept, or padding (a key in stock), in the region
            allowed = (key_src < m) | ~geo.real[keys]  # (B, Q*N)
            allowed = allowed.view(b * q, 1, 1, n)
            if geo.shift is not None:
                at = (tile_win * n)[..., None] + offset.view(b, q, t)
                same = geo.shift.view(-1, n)[at.flatten()] == 0  # (BQT, N)
                allowed = allowed & same.view(b * q, t, 1, n)
            self.mask = torch.where(allowed, 0., PRUNED_KEY_BIAS)
            self.key_src = (key_src + rows).view(b * q, n)
        self._table_index: Dict[tuple, Tuple[Tensor, ...]] = {}
        if _recorded is not None:
            _recorded.append((tuple(dhw), self))

    def table_index(self, attn: WindowAttention3D) -> Tuple[Tensor, ...]:
        """Per pack, (P, T, L) rows of ``attn``'s relative position bias
        table, its length (an appended :data:`PRUNED_KEY_BIAS` row) where
        masked; once per layout and configured window (a stage's blocks
        share it), as ``WindowAttention3D.forward`` reads the table."""
        n = self.window_numel
        key = tuple(attn.window_size)
        if key not in self._table_index:
            rel = attn.relative_position_index[:n, :n].reshape(-1)
            lut = torch.cat([rel, rel.new_full(
                (1, ), len(attn.relative_position_bias_table))])
            self._table_index[key] = tuple(
                lut[p.bias_index].int() for p in self.packs)
        return self._table_index[key]

    @property
    def scores(self) -> int:
        """(query, key) scores this layout's attention computes, per head."""
        t, n = self.tile, self.window_numel
        if self.packs is None:
            return self.key_src.shape[0] * t * n
        return sum(p.key_src.numel() * t for p in self.packs)


_whole_window_keys = False
_recorded: Optional[List[Tuple[Tuple[int, int, int], 'KeptTiles']]] = None


@contextmanager
def recorded_tiles(
) -> Iterator[List[Tuple[Tuple[int, int, int], 'KeptTiles']]]:
    """Within it, each :class:`KeptTiles` built joins the list it yields as
    ``((D, H, W), tiles)``: what a pruned forward's attention computed."""
    global _recorded
    before, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = before


@contextmanager
def whole_window_keys() -> Iterator[None]:
    """Within it, tiles attend to whole windows (keys masked, not packed),
    as graph captures and accelerators do; for timing that layout."""
    global _whole_window_keys
    before, _whole_window_keys = _whole_window_keys, True
    try:
        yield
    finally:
        _whole_window_keys = before


def packs_keys(device: torch.device) -> bool:
    """Whether kept-token attention packs each window's keys: in eager
    forwards on the CPU.

    Packing reads the kept layout back to size its buckets. On the CPU that
    costs no wait; on an accelerator it would be a host sync per stage and
    layout, so there (as in a graph capture: ``torch.jit.trace`` and fvcore,
    ``torch.compile``, ``torch.export``) keys stay whole windows, masked,
    and every shape follows from the view and ``r``.
    """
    return device.type == 'cpu' and not (
        _whole_window_keys or torch.jit.is_tracing()
        or torch.compiler.is_compiling() or torch.compiler.is_exporting())


class KeyPack(NamedTuple):
    """Query tiles whose windows hold ``L - T < keys <= L`` keys (``L <= N``),
    each attending to its window's keys only."""
    #: (P, ) the tiles, in (B*Q).
    tiles: Tensor
    #: (P, T) rows of their queries in the (B*(M+1), 3C) qkv.
    query_src: Tensor
    #: (P, L) rows of their keys and values; the fill row past a window's.
    key_src: Tensor
    #: (P, T, L) ``query_offset * N + key_offset`` into a window's flat
    #: bias, or ``N * N`` (:data:`PRUNED_KEY_BIAS`) for a key past the
    #: window's or, when shifted, in another region: the bias and the mask
    #: in one gather.
    bias_index: Tensor


def pack_keys(allowed: Tensor, at_slot: Tensor, tile_win: Tensor,
              query_src: Tensor, offset: Tensor, region: Optional[Tensor],
              t: int, m: int) -> Tuple[KeyPack, ...]:
    """(B, nW, N) allowed keys -> :class:`KeyPack` buckets of query tiles.

    Each window's allowed keys (kept or padding, in window order) are
    packed to the front; a tile joins the bucket of its window's count
    rounded up to ``T``, so a bucket's attention costs ``2 P T L C``. Tiles
    without a query (spare ones of a clip that fills fewer) join none. The
    buckets depend on the kept set: data-dependent shapes, for eager use.

    Args:
        allowed (Tensor): (B, nW, N) keys a kept query may see.
        at_slot (Tensor): (B, nW*N) kept token at each window slot, else M.
        tile_win (Tensor): (B, Q) window of each tile.
        query_src (Tensor): (B*Q, T) rows of the tiles' queries.
        offset (Tensor): (B*Q, T) window offsets of the tiles' queries.
        region (Tensor, optional): (nW, N) shift region of each window
            slot (:class:`WindowGeometry`), None where not shifted.
        t (int): Query slots per tile, ``T``.
        m (int): Kept tokens per clip, ``M``: the fill row's index.
    """
    b, nw, n = allowed.shape
    q = tile_win.shape[1]
    count = allowed.sum(-1)  # (B, nW) keys per window
    # allowed offsets first, in window order
    order = (~allowed).to(torch.uint8).argsort(
        dim=-1, stable=True)  # (B, nW, N)
    clip = torch.arange(b, device=allowed.device).repeat_interleave(q)
    win = tile_win.flatten()  # (B*Q, )
    busy = (query_src % (m + 1) < m).any(-1)  # (B*Q, ) holds a query
    length = (count[clip, win] + t - 1).div(t, rounding_mode='floor') * t
    length = torch.where(busy, length.clamp(max=n), 0)  # (B*Q, )
    at_slot = at_slot.view(b, nw, n)
    packs = []
    for size in length.unique().tolist():
        if size == 0:
            continue
        tiles = (length == size).nonzero().squeeze(1)  # (P, )
        c, w = clip[tiles], win[tiles]
        keys = order[c, w, :size]  # (P, L) key offsets
        src = at_slot[c, w].gather(1, keys) + (c * (m + 1))[:, None]
        rows = offset[tiles]  # (P, T) query offsets
        ok = (torch.arange(size, device=allowed.device) <
              count[c, w][:, None])[:, None, :]  # (P, 1, L)
        if region is not None:
            ok = ok & (region[w[:, None], rows][..., None] ==
                       region[w[:, None], keys][:, None, :])  # (P, T, L)
        index = torch.where(ok, (rows * n).int()[..., None] + keys.int()[
            :, None, :], n * n)  # (P, T, L), int32: N * N + 1 < 2^31
        packs.append(KeyPack(tiles, query_src[tiles], src, index))
    return tuple(packs)


@record_function('window_attention_core')  # for the speed breakdown
def tile_attention_core(attn: WindowAttention3D, rows: Tensor,
                        tiles: KeptTiles, fused: bool = False) -> Tensor:
    """(B*(M+1), 3C) qkv rows -> (B*Q, T, C) attention of the query tiles.

    Tile by tile in chunks of at most :data:`CHUNK` elements per temporary
    (bias rows, keys and values): their memory is reused, not paged in
    anew, and bounded on any batch. With packed keys, bucket by bucket
    (:func:`_packed_attention`); else a chunk's mask is the bias rows of its
    queries' offsets plus :attr:`KeptTiles.mask`.

    Args:
        attn (WindowAttention3D): The block's attention.
        rows (Tensor): The kept tokens' qkv, each clip's fill row last.
        tiles (KeptTiles): Their layout.
        fused (bool): Through ``F.scaled_dot_product_attention``. Defaults
            to False, the explicit matmuls.
    """
    c = rows.shape[1] // 3
    heads, (bq, t) = attn.num_heads, tiles.offset.shape
    n = tiles.window_numel
    if tiles.packs is not None:
        return _packed_attention(attn, rows, tiles, fused)
    bias_rows = relative_bias(attn, n).transpose(0, 1)  # (N, nH, N) by query
    step = max(1, CHUNK // max(t * heads * n, 2 * n * c))  # tiles a chunk
    outs = []
    for start in range(0, bq, step):
        part = slice(start, start + step)
        q = rows[:, :c].index_select(0, tiles.query_src[part].flatten())
        q = q.view(-1, t, heads, c // heads).transpose(1, 2)  # (b, nH, T, .)
        kv = rows[:, c:].index_select(0, tiles.key_src[part].flatten())
        kv = kv.view(-1, n, 2, heads, c // heads).permute(
            2, 0, 3, 1, 4)  # (2, b, nH, N, .)
        bias = bias_rows.index_select(0, tiles.offset[part].flatten())
        bias = bias.view(-1, t, heads, n).add_(tiles.mask[part])
        out = _attend(attn, q, kv[0], kv[1], bias.transpose(1, 2), fused)
        outs.append(out.transpose(1, 2).flatten(2))  # (b, T, C)
    return torch.cat(outs)


def _packed_attention(attn: WindowAttention3D, rows: Tensor,
                      tiles: KeptTiles, fused: bool) -> Tensor:
    """:func:`tile_attention_core` over :attr:`KeptTiles.packs`: bucket by
    bucket, in chunks; a spare tile's output is zeros (never read).

    Heads lead the batch dimensions, ``(nH, P, ...)``, so that the bias
    and mask of a chunk are one contiguous gather from the block's
    relative position bias table (with a :data:`PRUNED_KEY_BIAS` row
    appended): a masked key's logit is then -1e4 without its bias, and its
    weight exactly 0 all the same.
    """
    c = rows.shape[1] // 3
    heads, (bq, t) = attn.num_heads, tiles.offset.shape
    table = attn.relative_position_bias_table  # (R, nH)
    table = torch.cat([table, table.new_full((1, heads), PRUNED_KEY_BIAS)])
    table = table.t().contiguous()  # (nH, R + 1)
    out = rows.new_zeros(bq, t, c)
    for pack, index in zip(tiles.packs, tiles.table_index(attn)):
        size = pack.key_src.shape[1]
        step = max(1, CHUNK // max(t * heads * size, 2 * size * c))
        for start in range(0, len(pack.tiles), step):
            part = slice(start, start + step)
            q = rows[:, :c].index_select(0, pack.query_src[part].flatten())
            q = q.view(-1, t, heads, c // heads).permute(
                2, 0, 1, 3)  # (nH, P, T, C/nH)
            kv = rows[:, c:].index_select(0, pack.key_src[part].flatten())
            kv = kv.view(-1, size, 2, heads, c // heads).permute(
                2, 3, 0, 1, 4)  # (2, nH, P, L, C/nH)
            mask = table.index_select(1, index[part].flatten())
            mask = mask.view(heads, -1, t, size)  # (nH, P, T, L)
            o = _attend(attn, q, kv[0], kv[1], mask, fused)  # (nH, P, T, .)
            out.index_copy_(0, pack.tiles[part],
                            o.permute(1, 2, 0, 3).flatten(2))
    return out


def block_forward_kept(blk: SwinTransformerBlock3D, x: Tensor,
                       tiles: KeptTiles, qkv: Optional[Tensor] = None,
                       fused: bool = False) -> Tensor:
    """(B, M, C) kept tokens -> ``SwinTransformerBlock3D.forward`` on them.

    A copy of ``SwinTransformerBlock3D.forward`` (with ``forward_part1``)
    from mmaction 1.2.0: the attention runs on the kept tokens' query tiles
    in place of stock's pad / roll / partition; ``with_cp`` is not honoured.

    Args:
        blk (SwinTransformerBlock3D): The block.
        x (Tensor): (B, M, C) kept tokens.
        tiles (KeptTiles): Their tiles in the block's layout.
        qkv (Tensor, optional): (B, M, 3C) their qkv. Defaults to None.
        fused (bool): See :func:`tile_attention_core`. Defaults to False.
    """
    B, M, C = x.shape
    attn = blk.attn
    shortcut = x
    # --- STA: qkv of the kept tokens, gathered into query tiles ---
    if qkv is None:
        qkv = attn.qkv(blk.norm1(x))  # (B, M, 3C)
    if attn.qkv.bias is None:
        fill = qkv.new_zeros(1, 1, 3 * C)
    else:  # stock pads after norm1, so padding holds qkv(0) = bias
        fill = attn.qkv.bias.to(qkv.dtype).view(1, 1, -1)
    rows = torch.cat([qkv, fill.expand(B, 1, -1)], 1).flatten(0, 1)
    out = tile_attention_core(attn, rows, tiles, fused).view(B, -1, C)
    out = gather_tokens(out, tiles.query_slot)  # (B, M, C)
    out = attn.proj_drop(attn.proj(out))
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
        fused (bool): See :func:`tile_attention_core`. Defaults to False.
    """
    tokens, pos, qkv = select_with_keys(layer.blocks[0], tokens, pos, point,
                                        reverse, strategy, generator)
    layouts: Dict[tuple, KeptTiles] = {}
    for i, blk in enumerate(layer.blocks):
        layout = get_window_size(dhw, blk.window_size, blk.shift_size)
        if layout not in layouts:  # the blocks alternate two
            layouts[layout] = KeptTiles(pos, dhw, *layout)
        tokens = block_forward_kept(blk, tokens, layouts[layout],
                                    qkv if i == 0 else None, fused)
    return tokens, pos


@record_function('window_attention_core')  # for the speed breakdown
def full_window_core(attn: WindowAttention3D, q: Tensor, k: Tensor,
                     v: Tensor, sizes: Sequence[int],
                     masks: Optional[Tensor]) -> Tensor:
    """(B*nW, nH, N, C/nH) q, k, v of full windows -> fused attention.

    The windows come kind by kind (:func:`window_kinds`): each kind attends
    with the (1, nH, N, N) bias plus its own shift mask.
    """
    bias = relative_bias(attn, q.shape[2]).unsqueeze(0)  # (1, nH, N, N)
    if masks is None:
        return _attend(attn, q, k, v, bias, True)
    outs, start = [], 0
    for size, mask in zip(sizes, masks):
        part = slice(start, start + size)
        outs.append(_attend(attn, q[part], k[part], v[part], bias + mask,
                            True))
        start += size
    return torch.cat(outs)


def block_forward_full(blk: SwinTransformerBlock3D, x: Tensor) -> Tensor:
    """(B, D, H, W, C) -> ``SwinTransformerBlock3D.forward``, fused.

    A copy of ``SwinTransformerBlock3D.forward`` (with ``forward_part1``
    and ``WindowAttention3D.forward``) from mmaction 1.2.0 whose windows
    attend kind by kind through :func:`full_window_core`; ``with_cp`` is not
    honoured.
    """
    B, D, H, W, C = x.shape
    window_size, shift_size = get_window_size((D, H, W), blk.window_size,
                                              blk.shift_size)
    shortcut = x
    x = blk.norm1(x)
    # pad feature maps to multiples of window size
    pad_d1 = (window_size[0] - D % window_size[0]) % window_size[0]
    pad_b = (window_size[1] - H % window_size[1]) % window_size[1]
    pad_r = (window_size[2] - W % window_size[2]) % window_size[2]
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b, 0, pad_d1))
    _, Dp, Hp, Wp, _ = x.shape
    shifted = any(i > 0 for i in shift_size)
    if shifted:
        x = torch.roll(
            x,
            shifts=(-shift_size[0], -shift_size[1], -shift_size[2]),
            dims=(1, 2, 3))
    x_windows = window_partition(x, window_size)  # B*nW, Wd*Wh*Ww, C
    # --- STA: the windows kind by kind, fused attention, no mask per window
    order, sizes, masks = window_kinds(B, (D, H, W), window_size,
                                       shift_size, x.device)
    if order is not None:
        x_windows = x_windows.index_select(0, order)
    attn = blk.attn
    B_, N, _ = x_windows.shape
    qkv = attn.qkv(x_windows).reshape(B_, N, 3, attn.num_heads,
                                      C // attn.num_heads).permute(
                                          2, 0, 3, 1, 4)
    out = full_window_core(attn, qkv[0], qkv[1], qkv[2], sizes, masks)
    out = attn.proj_drop(attn.proj(out.transpose(1, 2).reshape(B_, N, C)))
    if order is not None:  # back to stock's window order
        out = torch.empty_like(out).index_copy_(0, order, out)
    # --- end STA ---
    attn_windows = out.view(-1, *(window_size + (C, )))
    x = window_reverse(attn_windows, window_size, B, Dp, Hp, Wp)
    if shifted:
        x = torch.roll(
            x,
            shifts=(shift_size[0], shift_size[1], shift_size[2]),
            dims=(1, 2, 3))
    if pad_d1 > 0 or pad_r > 0 or pad_b > 0:
        x = x[:, :D, :H, :W, :].contiguous()
    x = shortcut + blk.drop_path(x)
    x = x + blk.forward_part2(x)
    return x


@record_function('layer_forward_fused')  # for the speed breakdown
def layer_forward_fused(layer: BasicLayer, x: Tensor,
                        do_downsample: bool = True) -> Tensor:
    """(B, C, D, H, W) -> ``BasicLayer.forward``, with fused attention.

    Each block is :func:`block_forward_full`: stock's outputs to float
    rounding, (B, D, H, W, C) or, downsampled, (B, D, H/2, W/2, 2C).

    Args:
        layer (BasicLayer): The stage.
        x (Tensor): (B, C, D, H, W) its input.
        do_downsample (bool): Apply the patch merging. Defaults to True.
    """
    x = rearrange(x, 'b c d h w -> b d h w c')
    for blk in layer.blocks:
        x = block_forward_full(blk, x)
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
