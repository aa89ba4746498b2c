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


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('strategy', SWIN_STRATEGIES)
def test_tiles_match_the_full_window_path(strategy, fused):
    """Every strategy keeps the same tokens at every prune point, and their
    outputs equal the full-window path's (float32, 1e-5)."""
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
        tiles = KeptTiles(pos[None], dhw, window, shift)
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
    tiles = KeptTiles(pos, (4, 8, 8), (2, 7, 7), (1, 3, 3))
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


def test_compiles_fullgraph_like_eager():
    """``torch.compile(fullgraph=True)``: one graph, eager's outputs.

    Dynamo's capture through AOT autograd (``aot_eager``): inductor's code
    generation for Swin costs 5-15 minutes on this CPU (``benchmark.py
    --compile`` runs it; docs/speed.md).
    """
    torch.manual_seed(0)
    arch = dict(TILED['arch'], depths=[2, 2, 1, 1])  # shifts at stages 1-2
    model = STASwin3D(drop_number=24, fused_attention=True,
                      **dict(TILED, arch=arch)).eval()
    x = clip(b=1)
    compiled = torch.compile(model, fullgraph=True, dynamic=False,
                             backend='aot_eager')
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=0)
