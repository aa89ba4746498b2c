"""Kept-token window attention of STASwin3D: query tiles against the
full-window path they replaced (``swin_reference``), their bound, masks and
compilation."""
import pytest
import torch
import torch.nn.functional as F

import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)
from sta_mmaction.models import STASwin3D, swin_layers
from sta_mmaction.models.sta_swin import SWIN_STRATEGIES
from sta_mmaction.models.swin_layers import (PRUNED_KEY_BIAS, KeptTiles,
                                             query_tiles, window_geometry)
from . import swin_reference
from .test_sta_swin import SMALL, clip

#: Windows of 2x7x7 on 8 x 64^2 clips: every stage padded (8 -> 14, 4 -> 7)
#: and shifted; stage 2 runs query tiles of 32 (T < N = 98).
TILED = dict(SMALL, window_size=(2, 7, 7))


def tiled(r, strategy='sta', fused=False):
    torch.manual_seed(0)
    return STASwin3D(drop_number=r, strategy=strategy, seed=3,
                     fused_attention=fused, **TILED).eval()


@pytest.mark.parametrize('packed', [True, False], ids=['packed', 'static'])
@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('strategy', SWIN_STRATEGIES)
def test_tiles_match_the_full_window_path(strategy, fused, packed,
                                          monkeypatch):
    """Every strategy keeps the same tokens at every prune point, and their
    outputs equal the full-window path's (float32, 1e-5), with keys packed
    (eager) or as whole windows (the static shapes a graph capture gets)."""
    monkeypatch.setattr(swin_layers, 'packs_keys', lambda device: packed)
    model, x = tiled(24, strategy, fused), clip(b=2, seed=5)
    kept_2 = model.token_counts(x.shape)[1]  # 160 of 256 at stage 2
    assert query_tiles(kept_2, 8, 98) == (32, 12)  # 384 of 784 slots
    with torch.no_grad():
        got, kept = model.forward_pruned(x)
        want, want_kept = swin_reference.forward_pruned(model, x)
    assert len(kept) == len(want_kept) == 3
    assert all(torch.equal(a, b) for a, b in zip(kept, want_kept))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_query_tiles_bound_holds_for_any_kept_set(monkeypatch):
    """Tokens crowded into few windows, spread over all, or placed to fill
    the most tiles: each window's tokens fill its own tiles, in slots that
    never collide, within the bound."""
    dhw, window, shift = (4, 8, 8), (2, 4, 4), (1, 2, 2)
    n, m = 32, 80  # 8 windows of 32
    geo = window_geometry(dhw, window, shift, torch.device('cpu'))
    by_slot = geo.slot.argsort()  # grid position of each window slot
    crowded = by_slot[:m]  # windows 0 and 1 full, window 2 half
    spread = by_slot.view(8, n)[:, :m // 8].flatten()  # 10 per window
    # 25, 25, 25, 1, 1, 1, 1, 1 tokens fill 4 + 4 + 4 + 5 = 17 tiles
    tight = torch.cat([w[:k] for w, k in zip(by_slot.view(8, n),
                                              [25] * 3 + [1] * 5)])
    monkeypatch.setattr(swin_layers, 'QUERY_TILE', 8)
    t, q = query_tiles(m, 8, n)
    assert (t, q) == (8, 8 + 72 // 8)
    for pos in (crowded, spread, tight, torch.randperm(256)[:m]):
        tiles = KeptTiles(pos[None], dhw, window, shift, packed_keys=False)
        assert (tiles.tile, tiles.tiles) == (t, q)
        slot = tiles.query_slot[0]  # (M, )
        assert slot.unique().numel() == m and slot.max() < q * t
        assert torch.equal(tiles.query_src.flatten()[slot], torch.arange(m))
        # a tile's queries share one window, whose positions are its keys
        win = geo.slot[pos] // n  # (M, )
        for tile in range(q):
            assert win[slot // t == tile].unique().numel() <= 1
        keys = tiles.key_src[slot // t]  # (M, N) key rows of each tile
        assert (keys == torch.arange(m)[:, None]).any(1).all()


@pytest.mark.parametrize('dhw, window, shift', [
    ((4, 8, 8), (2, 4, 4), (1, 2, 2)),  # shifted, no padding
    ((5, 9, 6), (2, 3, 3), (1, 1, 1)),  # shifted and padded
    ((5, 9, 6), (2, 3, 3), (0, 0, 0)),  # padded
])
def test_packed_keys_are_the_kept_and_padding_keys_of_a_window(
        dhw, window, shift, monkeypatch):
    """Re-stated per kept query from the geometry: its allowed keys are the
    kept or padding positions of its window in its shift region; the packs
    give exactly those (fill row for padding), at the right bias offsets,
    in buckets of at most ``T - 1`` spare keys."""
    monkeypatch.setattr(swin_layers, 'QUERY_TILE', 8)
    n = window[0] * window[1] * window[2]
    geo = window_geometry(dhw, window, shift, torch.device('cpu'))
    gen = torch.Generator().manual_seed(0)
    total = dhw[0] * dhw[1] * dhw[2]
    pos = torch.stack([torch.randperm(total, generator=gen)[:total // 3]
                       for _ in range(2)])  # (2, M)
    m = pos.shape[1]
    tiles = KeptTiles(pos, dhw, window, shift, packed_keys=True)
    assert tiles.packs and tiles.tile == 8
    where = {}  # tile -> (pack, row in it)
    for pack in tiles.packs:
        size = pack.key_src.shape[1]
        assert size % 8 == 0 or size == n
        for row, tile in enumerate(pack.tiles.tolist()):
            where[tile] = (pack, row)
    pad_slots = (~geo.real).nonzero().flatten()
    for c in range(2):
        slot = geo.slot[pos[c]]  # (M, ) window * N + offset
        for i in range(m):
            w, off = divmod(slot[i].item(), n)
            region = [geo.shift is None or geo.shift[w, off, k] == 0
                      for k in range(n)]
            want = sorted(
                [j for j in range(m) if slot[j] // n == w and
                 region[slot[j] % n]] +
                [m for p in pad_slots.tolist() if p // n == w and
                 region[p % n]])
            tile, j = divmod(tiles.query_slot[c, i].item(), 8)
            pack, row = where[c * tiles.tiles + tile]
            assert pack.query_src[row, j] == c * (m + 1) + i
            ok = pack.bias_index[row, j] < n * n
            got = pack.key_src[row][ok] - c * (m + 1)
            assert sorted(got.tolist()) == want
            index = pack.bias_index[row, j][ok]
            assert (index // n == off).all()
            kept = got < m
            assert torch.equal(index[kept] % n, slot[got[kept]] % n)
            count = sum(1 for k in range(n) if geo.real[w * n + k] == 0
                        or (slot == w * n + k).any())
            assert count <= pack.key_src.shape[1] < count + 8 or \
                pack.key_src.shape[1] == n
    # tiles without a query (spare ones) attend to nothing
    busy = (tiles.query_src % (m + 1) < m).any(-1)
    assert sorted(where) == busy.nonzero().flatten().tolist()


def test_keys_are_not_packed_in_a_captured_graph():
    """Under ``torch.jit.trace`` (fvcore) the tiles keep whole windows, so
    the graph's shapes follow from the view and ``r``; on an accelerator
    too (no host sync)."""
    assert not swin_layers.packs_keys(torch.device('cuda'))
    assert not swin_layers.packs_keys(torch.device('meta'))
    pos = torch.arange(0, 256, 3)[None]
    seen = []

    def build(p):
        tiles = KeptTiles(p, (4, 8, 8), (2, 4, 4), (1, 2, 2))
        seen.append(tiles.packs)
        return tiles.key_src.float()

    torch.jit.trace(build, (pos, ), check_trace=False)
    assert seen == [None]
    assert KeptTiles(pos, (4, 8, 8), (2, 4, 4), (1, 2, 2)).packs


def test_masks_are_exact_and_bounded(monkeypatch):
    """No attention gets a (B*nW, heads, N, N) mask: full windows take the
    (1, heads, N, N) bias, tiles chunks of at most ``CHUNK`` elements;
    masked keys sit at PRUNED_KEY_BIAS (plus the bias), never at stock's
    -100, whose softmax weights are subnormal."""
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        calls.append((q.shape, attn_mask))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    monkeypatch.setattr(swin_layers, 'CHUNK', 2**13)
    model = tiled(24, fused=True)
    with torch.no_grad():
        model(clip(b=2))
    blocks = sum(SMALL['arch']['depths'])
    assert len(calls) > blocks  # shift kinds and chunks
    for shape, mask in calls:
        assert torch.isfinite(mask).all()
        assert mask.shape[0] == 1 or mask.numel() <= 2**13
        assert mask.numel() < 2 * shape[1] * 8 * 98 * 98
        assert not ((mask < -50) & (mask > PRUNED_KEY_BIAS / 2)).any()
    assert any((m < PRUNED_KEY_BIAS / 2).any() for _, m in calls)
    # a kept query gives its pruned and other-region keys weight 0 exactly
    pos = torch.arange(0, 256, 3)[None]
    tiles = KeptTiles(pos, (4, 8, 8), (2, 7, 7), (1, 3, 3),
                      packed_keys=False)
    weights = tiles.mask.expand(-1, 32, 1, 98).softmax(-1)
    assert ((weights == 0) == (tiles.mask == PRUNED_KEY_BIAS)).all()


@pytest.mark.parametrize('dhw, window, shift', [
    ((4, 8, 8), (2, 4, 4), (1, 2, 2)),  # every axis shifted
    ((4, 2, 2), (2, 2, 2), (1, 0, 0)),  # one shifted axis: two kinds
    ((5, 9, 6), (2, 3, 3), (1, 1, 1)),  # padded
])
def test_window_kinds_carry_stocks_shift_masks(dhw, window, shift):
    """Each window, taken kind by kind, gets stock's ``compute_mask`` of its
    position in stock's order (0 or PRUNED_KEY_BIAS for 0 or -100)."""
    order, sizes, masks = swin_layers.window_kinds(2, dhw, window, shift,
                                                   torch.device('cpu'))
    padded = [-(-n // w) * w for n, w in zip(dhw, window)]
    stock = swin_layers.compute_mask(*padded, window, shift, 'cpu')
    kind = torch.repeat_interleave(torch.arange(len(sizes)),
                                   torch.tensor(sizes))
    assert sorted(order.tolist()) == list(range(2 * stock.shape[0]))
    want = torch.where(stock[order % stock.shape[0]] < 0, PRUNED_KEY_BIAS,
                       0.)
    assert torch.equal(masks[kind], want)


def test_geometry_is_cached_per_stage_and_view():
    """The second forward on a view builds no window geometry, and a stage
    lays out its kept tokens once per window layout."""
    model, x = tiled(24), clip(b=2)
    built = []
    init = KeptTiles.__init__

    def count(self, *args):
        built.append(args[1:])
        init(self, *args)

    with torch.no_grad():
        model(x)
        before = window_geometry.cache_info()
        KeptTiles.__init__ = count
        try:
            model(x)
        finally:
            KeptTiles.__init__ = init
    after = window_geometry.cache_info()
    assert after.misses == before.misses and after.hits > before.hits
    assert len(built) == len(set(built)) == 6  # 3 stages x 2 layouts


def test_inductor_compiles_like_eager(monkeypatch):
    """The ``--compile`` path: inductor's code for a pruned STASwin3D
    (stage 1's full windows, plain and shifted; query tiles with
    whole-window keys, plain and shifted; the kept-token merges) within
    1e-5 of eager, which packs its keys; one graph (``fullgraph=True``).
    One compile on one core, of scalar C++ kernels (vectorised ones take
    twice as long to build; the ViT's test builds those): about a minute
    and a half here (docs/speed.md)."""
    from torch._inductor import config
    monkeypatch.setattr(config, 'compile_threads', 1)
    monkeypatch.setattr(config.cpp, 'vec_isa_ok', False)
    torch.manual_seed(0)
    arch = dict(TILED['arch'], depths=[2, 2, 1, 1])
    model = STASwin3D(drop_number=24, fused_attention=True,
                      **dict(TILED, arch=arch)).eval()
    x = clip(b=1)
    compiled = torch.compile(model, fullgraph=True, dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=0)
