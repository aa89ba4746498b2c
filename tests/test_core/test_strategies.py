"""Baselines and ablations: token counts, seeds, ToMe merging, errors."""
import pytest
import torch

from sta_mmaction.core import (MERGING, SELECTORS, STRATEGIES,
                               bipartite_match, clip_generators,
                               group_schedule, merge_tokens, random_select,
                               select_tokens, semantic_activation, sta_select)
from sta_mmaction.models import STAViT

from .test_sta_rule import reference_select

# per group; 'rlt' drops per clip (test_rlt.py)
SELECTING = [s for s in STRATEGIES if s not in MERGING + ('rlt', )]

# 16 frames of 64x64 -> 8 slices of 4x4 = 16 tokens; the largest r is 8.
SMALL = dict(
    img_size=64,
    patch_size=16,
    embed_dims=48,
    depth=6,
    num_heads=4,
    num_frames=16,
    norm_cfg=dict(type='LN', eps=1e-6))


def inputs(b=3, groups=4, n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, groups * n, 12, generator=gen)
    keys = torch.randn(b, groups * n, 6, generator=gen)
    return x, keys


def model(strategy, r=4, seed=None, **extra):
    torch.manual_seed(0)
    return STAViT(
        **SMALL, drop_number=r, strategy=strategy, seed=seed, **extra).eval()


def clip(b=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 16, 64, 64, generator=gen)


@pytest.mark.parametrize('strategy', SELECTING)
@pytest.mark.parametrize('r', [1, 5, 8])
def test_select_counts_and_groups(strategy, r):
    x, keys = inputs()
    gen = torch.Generator().manual_seed(0)
    idx = select_tokens(x, keys, 4, r, strategy=strategy, generator=gen)
    assert idx.shape == (3, 4 * (16 - r)) and idx.dtype == torch.long
    for g in range(4):  # each group keeps 16 - r distinct tokens of its own
        part = idx[:, g * (16 - r):(g + 1) * (16 - r)]
        assert int(part.min()) >= g * 16 and int(part.max()) < (g + 1) * 16
        assert all(len(set(row.tolist())) == 16 - r for row in part)


@pytest.mark.parametrize('strategy', list(STRATEGIES))
@pytest.mark.parametrize('r', [3, 8])
def test_model_token_counts_at_every_point(strategy, r):
    vit = model(strategy, r, seed=1)
    counts = vit.token_counts()
    assert counts == [128, 128 - 8 * r, 128 - 12 * r, 128 - 14 * r]
    with torch.no_grad():
        feats, kept = vit.forward_pruned(clip())
    assert feats.shape == (2, 48) and torch.isfinite(feats).all()
    assert [k.shape[1] for k in kept] == counts[1:]
    groups = group_schedule(8)
    for point, k in enumerate(kept):
        assert all(len(set(row.tolist())) == k.shape[1] for row in k)
        if point == 0 and strategy != 'rlt':  # groups are the time slices
            per = k.shape[1] // groups[0]
            for g in range(groups[0]):
                part = k[:, g * per:(g + 1) * per]
                assert int(part.min()) >= 16 * g
                assert int(part.max()) < 16 * (g + 1)


@pytest.mark.parametrize('strategy', list(STRATEGIES))
def test_zero_drop_is_stock_for_every_strategy(strategy):
    ref, vit = model('sta', 0), model(strategy, 0, seed=0)
    vit.load_state_dict(ref.state_dict())
    x = clip()
    with torch.no_grad():
        assert torch.equal(ref(x), vit(x))


def test_sta_is_unchanged():
    x, keys = inputs(seed=4)
    for reverse in (False, True):
        default = sta_select(x, keys, 4, 5, reverse)
        named = select_tokens(
            x,
            keys,
            4,
            5,
            reverse,
            strategy='sta',
            generator=torch.Generator().manual_seed(9))
        assert torch.equal(default, named)
        for i in range(3):
            assert default[i].tolist() == reference_select(
                x[i], keys[i], 4, 5, reverse)
    plain = STAViT(**SMALL, drop_number=5).eval()
    named = STAViT(**SMALL, drop_number=5, strategy='sta', seed=3).eval()
    named.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, kept_a = plain.forward_pruned(clip())
        b, kept_b = named.forward_pruned(clip())
    assert torch.equal(a, b)
    assert all(torch.equal(p, q) for p, q in zip(kept_a, kept_b))


def test_random_seed_is_honoured_in_core():
    def draw(seed):
        return random_select(2, 64, 4, 6, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    x, keys = inputs()
    a = select_tokens(
        x,
        keys,
        4,
        6,
        strategy='random',
        generator=torch.Generator().manual_seed(5))
    b = select_tokens(
        x * 2,
        -keys,
        4,
        6,
        strategy='random',
        generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)  # the content plays no part
    torch.manual_seed(7)  # no generator: the global RNG
    c = select_tokens(x, keys, 4, 6, strategy='random')
    torch.manual_seed(7)
    assert torch.equal(c, select_tokens(x, keys, 4, 6, strategy='random'))


def test_random_keep_sets_are_uniform():
    """Every token survives a group about (n - r) / n of the time."""
    gen = torch.Generator().manual_seed(0)
    idx = random_select(4000, 16, 1, 4, gen)  # (4000, 12)
    freq = torch.bincount(idx.flatten(), minlength=16).double() / 4000
    torch.testing.assert_close(
        freq, torch.full((16, ), 12 / 16, dtype=torch.float64), atol=0.03,
        rtol=0)


def test_random_per_sample_generators_in_core():
    """One generator per sample: a sample's draws ignore the batch."""
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    gens = clip_generators(x, 3)
    batch = random_select(4, 64, 4, 6, gens)
    alone = [random_select(1, 64, 4, 6, clip_generators(x[i:i + 1], 3))
             for i in range(4)]
    for i in range(4):
        assert torch.equal(batch[i], alone[i][0])
    assert not torch.equal(batch[0], batch[1])  # the clips differ
    with pytest.raises(ValueError, match='3 generators for a batch of 4'):
        random_select(4, 64, 4, 6, gens[:3])


def test_clip_generators_depend_on_seed_and_content():
    def first_draw(x, seed):
        return [torch.rand(4, generator=g) for g in clip_generators(x, seed)]

    x = torch.randn(2, 3, 16, 32, 32,
                    generator=torch.Generator().manual_seed(1))
    a = first_draw(x, 0)
    assert all(torch.equal(p, q) for p, q in zip(a, first_draw(x, 0)))
    assert not torch.equal(a[0], first_draw(x, 1)[0])
    assert not torch.equal(a[0], a[1])
    # the hash does not care where the clip lives or how it is laid out
    assert torch.equal(a[1], first_draw(x.flip(0).contiguous()[:1], 0)[0])


def test_random_seed_is_honoured_in_model():
    """A clip keeps the same tokens alone, in a batch, in any order."""
    x = clip(b=4, seed=1)

    def kept(seed, batch):
        vit = model('random', 6, seed=seed)
        with torch.no_grad():
            return vit.forward_pruned(batch)[1]

    batch = kept(0, x)
    order = [2, 0, 3, 1]
    shuffled = kept(0, x[order])
    for i in range(4):
        alone = kept(0, x[i:i + 1])
        for p in range(3):
            assert torch.equal(batch[p][i], alone[p][0])
            assert torch.equal(batch[p][i], shuffled[p][order.index(i)])
    assert all(torch.equal(p, q) for p, q in zip(batch, kept(0, x)))
    other = kept(1, x)
    assert not any(torch.equal(p[i], q[i]) for p, q in zip(batch, other)
                   for i in range(4))
    # the clips differ, so do their tokens; and the same model twice agrees
    assert not torch.equal(batch[0][0], batch[0][1])
    vit = model('random', 6, seed=0)
    with torch.no_grad():
        once, twice = (vit.forward_pruned(x)[1] for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(once, twice))


def test_temporal_is_sta_without_semantics():
    x, keys = inputs(seed=2)
    flat = torch.ones_like(x)  # no semantic contrast: a = 0 everywhere
    assert torch.equal(
        semantic_activation(flat, 4), torch.zeros(3, 4, 16))
    for reverse in (False, True):
        assert torch.equal(
            select_tokens(x, keys, 4, 5, reverse, strategy='temporal'),
            sta_select(flat, keys, 4, 5, reverse))
        assert torch.equal(
            sta_select(x, keys, 4, 5, reverse, semantic=False),
            sta_select(flat, keys, 4, 5, reverse))


def test_semantic_keeps_the_most_active_tokens():
    x, keys = inputs(seed=3)
    r = 5
    idx = select_tokens(x, keys, 4, r, strategy='semantic')
    act = x.abs().sum(-1).view(3, 4, 16)
    for g in range(4):
        top = act[:, g].topk(16 - r, dim=-1).indices + 16 * g
        part = idx[:, g * (16 - r):(g + 1) * (16 - r)]
        assert torch.equal(part.sort(-1).values, top.sort(-1).values)
    # keys play no part
    assert torch.equal(
        idx,
        select_tokens(x, torch.randn_like(keys), 4, r, strategy='semantic'))


def reference_match(keys, r):
    """One group, plain Python: ToMe's matching as its paper words it."""
    unit = keys / keys.norm(dim=-1, keepdim=True)
    n = keys.shape[0]
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    best = {}
    for p in even:
        sims = [float(unit[p] @ unit[q]) for q in odd]
        j = max(range(len(odd)), key=lambda k: (sims[k], -k))
        best[p] = (sims[j], odd[j])
    ranked = sorted(even, key=lambda p: (-best[p][0], p))
    src = ranked[:r]
    return sorted(odd + ranked[r:]), src, [best[p][1] for p in src]


@pytest.mark.parametrize('r', [1, 4, 8])
def test_bipartite_match_matches_reference(r):
    _, keys = inputs(b=2, seed=r)
    kept, src, dst = bipartite_match(keys, 4, r)
    assert kept.shape == (2, 4 * (16 - r)) and src.shape == dst.shape == (
        2, 4 * r)
    for i in range(2):
        for g in range(4):
            ref = reference_match(keys[i, 16 * g:16 * (g + 1)], r)
            got = (kept[i, g * (16 - r):(g + 1) * (16 - r)] - 16 * g,
                   src[i, g * r:(g + 1) * r] - 16 * g,
                   dst[i, g * r:(g + 1) * r] - 16 * g)
            assert [t.tolist() for t in got] == list(ref)
        # every token is kept or merged into a kept token, never both
        assert sorted(kept[i].tolist() + src[i].tolist()) == list(range(64))
        assert set(dst[i].tolist()) <= set(kept[i].tolist())


def test_merge_is_size_weighted():
    x = torch.tensor([[[1.], [2.], [4.], [8.]]])  # (1, 4, 1)
    size = torch.tensor([[1., 3., 2., 1.]])
    kept, src, dst = (torch.tensor([[1, 3]]), torch.tensor([[0, 2]]),
                      torch.tensor([[1, 1]]))
    merged, new = merge_tokens(x, size, kept, src, dst)
    assert new.tolist() == [[6., 1.]]
    torch.testing.assert_close(merged,
                               torch.tensor([[[(1 + 6 + 8) / 6], [8.]]]))


def test_tome_sizes_sum_to_the_original_count():
    """Through the three points of the schedule, as STAViT runs them."""
    gen = torch.Generator().manual_seed(0)
    b, per_slice, r = 2, 49, 24
    x = torch.randn(b, 8 * per_slice, 16, generator=gen)
    size = torch.ones(b, x.shape[1])
    for groups in group_schedule(8):
        keys = torch.randn(b, x.shape[1], 8, generator=gen)
        kept, src, dst = bipartite_match(keys, groups, r)
        x, size = merge_tokens(x, size, kept, src, dst)
        assert x.shape[1] == size.shape[1] == kept.shape[1]
        assert torch.equal(size.sum(1), torch.full((b, ), 392.))
        assert (size >= 1).all()
    assert x.shape[1] == 392 - 14 * r


def test_tome_prop_attn_and_pooling():
    x = clip()
    plain, prop = model('tome', 6, prop_attn=False), model('tome', 6)
    prop.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, kept_a = plain.forward_pruned(x)
        b, kept_b = prop.forward_pruned(x)
    assert torch.equal(kept_a[0], kept_b[0])  # same first merge
    assert not torch.allclose(a, b)  # proportional attention changes it


@pytest.mark.parametrize('value', ['STA', 'drop', None, 3])
def test_bad_strategy(value):
    x, keys = inputs()
    with pytest.raises(ValueError, match='choose one of'):
        select_tokens(x, keys, 4, 2, strategy=value)
    with pytest.raises(ValueError, match=f'strategy={value!r}'):
        STAViT(**SMALL, drop_number=2, strategy=value)


def test_strategy_table_dispatches_every_selection(monkeypatch):
    """Each selecting strategy runs its own entry of ``SELECTORS``."""
    assert STRATEGIES == tuple(SELECTORS) + MERGING
    x, keys = inputs()
    for name in SELECTORS:
        calls = []
        monkeypatch.setitem(SELECTORS, name,
                            lambda *args, name=name: calls.append(name))
        select_tokens(x, keys, 4, 2, strategy=name,
                      change=torch.zeros(x.shape[:2]))
        assert calls == [name]


@pytest.mark.parametrize('strategy', MERGING)
def test_merging_is_not_a_selection(strategy):
    x, keys = inputs()
    with pytest.raises(ValueError, match='bipartite_match'):
        select_tokens(x, keys, 4, 2, strategy=strategy)


@pytest.mark.parametrize('kwargs, match', [
    (dict(seed=1.5), 'seed=1.5 must be an int'),
    (dict(seed=True), 'seed=True must be an int'),
    (dict(prop_attn='yes'), "prop_attn='yes' must be True or False"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STAViT(**SMALL, drop_number=2, strategy='random', **kwargs)


def test_from_config_options():
    """Each strategy is one backbone key, so --cfg-options can set it."""
    from mmaction.registry import MODELS
    from mmengine.config import Config
    cfg = Config(dict(model=dict(type='STAViT', drop_number=3, **SMALL)))
    cfg.merge_from_dict({'model.strategy': 'tome', 'model.seed': 4})
    vit = MODELS.build(cfg.model)
    assert (vit.strategy, vit.seed, vit.drop_number) == ('tome', 4, 3)

