"""The oracle strategy: each group keeps its first tokens, no scoring."""
import pytest
import torch
from mmaction.models.backbones.swin import SwinTransformer3D
from mmaction.models.backbones.vit_mae import VisionTransformer
from torch import nn

from sta_mmaction.analysis import analytic_swin_flops, count_flops
from sta_mmaction.analysis.speed import oracle_twin
from sta_mmaction.core import (NEEDS_KEYS, STRATEGIES, first_select,
                               group_schedule, select_tokens)
from sta_mmaction.models import STASwin3D, STAViT
from sta_mmaction.models.swin_layers import (KeptTiles, block_forward_kept,
                                             get_window_size, merge_kept)

from ..test_models.test_sta_swin import SMALL as SWIN
from ..test_models.test_sta_swin import clip as swin_clip
from ..test_models.test_sta_vit import SMALL as VIT
from ..test_models.test_sta_vit import clip as vit_clip


def vit(r, strategy='oracle', fused=False, **extra):
    torch.manual_seed(0)
    return STAViT(
        **VIT,
        drop_number=r,
        strategy=strategy,
        fused_attention=fused,
        **extra).eval()


def swin(r, strategy='oracle', fused=False):
    torch.manual_seed(0)
    return STASwin3D(
        **SWIN, drop_number=r, strategy=strategy,
        fused_attention=fused).eval()


def first_of_groups(x, groups, kept):
    """(B, N, ...) -> (B, groups * kept, ...) by slicing, not by index."""
    return x.unflatten(1, (groups, -1))[:, :, :kept].flatten(1, 2)


def vit_reference(model, x):
    """The stock blocks, each group sliced to its first tokens by hand."""
    r = model.drop_number
    tokens = model.embed_tokens(x)  # (B, N, C)
    pos = torch.arange(tokens.shape[1]).expand(x.shape[0], -1)  # (B, N)
    groups = dict(
        zip(model.prune_layers,
            group_schedule(model.num_frames // model.tubelet_size)))
    kept = []
    for i, blk in enumerate(model.blocks):
        tokens = blk(tokens)
        if i in groups:
            g = groups[i]
            keep = tokens.shape[1] // g - r
            tokens = first_of_groups(tokens, g, keep)
            pos = first_of_groups(pos, g, keep)
            kept.append(pos)
    return model.fc_norm(model.norm(tokens).mean(1)), kept


def swin_reference(model, x):
    """The kept-token stages on each group's first candidates, by slicing;
    every block, the first one included, projects its own qkv."""
    points = model.token_schedule(x.shape)
    fused = model.fused_attention
    first = model.layers[0]
    grid = model.pos_drop(model.patch_embed(x))
    grid = first(grid.contiguous(), do_downsample=False)
    grid = first.downsample(grid)  # (B, D, H, W, C)
    b, d, h, w, c = grid.shape
    grid_in = tokens = grid.reshape(b, d * h * w, c)
    pos = torch.arange(d * h * w).expand(b, -1)
    kept = []
    for p, layer in enumerate(model.layers[1:]):
        if p > 0:
            tokens, pos, grid_in, (d, h, w) = merge_kept(
                model.layers[p].downsample, grid_in, tokens, pos, (d, h, w),
                points[p - 1]['groups'], points[p]['carried'])
        groups, keep = points[p]['groups'], points[p]['kept']
        tokens = first_of_groups(tokens, groups, keep)
        pos = first_of_groups(pos, groups, keep)
        for blk in layer.blocks:
            layout = get_window_size((d, h, w), blk.window_size,
                                     blk.shift_size)
            tiles = KeptTiles(pos, (d, h, w), *layout)
            tokens = block_forward_kept(blk, tokens, tiles, fused=fused)
        kept.append(pos)
    out = getattr(model, f'norm{model.num_layers - 1}')(tokens).mean(1)
    return out[:, :, None, None, None], kept


def test_first_select_keeps_each_groups_first_positions():
    idx = first_select(2, 12, 3, 2)  # 3 groups of 4, 2 dropped from each
    assert idx.dtype == torch.long
    assert idx.tolist() == [[0, 1, 4, 5, 8, 9]] * 2
    x, keys = torch.randn(2, 12, 5), torch.randn(2, 12, 3)
    for reverse in (False, True):  # no order to visit: nothing is scored
        assert torch.equal(
            select_tokens(x, keys, 3, 2, reverse, strategy='oracle'), idx)
    assert torch.equal(
        select_tokens(x, None, 3, 0, strategy='oracle'),
        torch.arange(12).expand(2, -1))


def test_oracle_is_a_selecting_strategy_without_keys():
    assert 'oracle' in STRATEGIES and 'oracle' not in NEEDS_KEYS
    assert {'random', 'semantic'}.isdisjoint(NEEDS_KEYS)
    x = torch.randn(2, 12, 5)
    assert select_tokens(x, None, 3, 2, strategy='oracle').shape == (2, 6)
    with pytest.raises(ValueError, match="strategy='sta' scores the"):
        select_tokens(x, None, 3, 2, strategy='sta')


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('r', [2, 4, 8])
def test_vit_oracle_is_sta_counts_on_first_tokens(r, fused):
    model, sta = vit(r, fused=fused), vit(r, 'sta', fused)
    x = vit_clip()
    with torch.no_grad():
        feats, kept = model.forward_pruned(x)
        ref, ref_kept = vit_reference(model, x)
        sta_feats, _ = sta.forward_pruned(x)
    assert [k.shape[1] for k in kept] == sta.token_counts()[1:]
    assert all(torch.equal(k, q) for k, q in zip(kept, ref_kept))
    torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(feats, sta_feats)  # other tokens survive


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('r', [16, 24])
def test_swin_oracle_is_sta_counts_on_first_tokens(r, fused):
    model, sta = swin(r, fused=fused), swin(r, 'sta', fused)
    x = swin_clip(b=2, seed=4)
    with torch.no_grad():
        feats, kept = model.forward_pruned(x)
        ref, ref_kept = swin_reference(model, x)
        _, sta_kept = sta.forward_pruned(x)
    counts = sta.token_counts(x.shape)
    assert model.token_counts(x.shape) == counts
    assert [k.shape[1] for k in kept] == counts[1:]
    assert [k.shape for k in kept] == [k.shape for k in sta_kept]
    # stage 2's candidates are the whole grid: each slice's first tokens
    point = model.token_schedule(x.shape)[0]
    assert torch.equal(
        kept[0],
        first_select(2, 256, point['groups'], point['drop']))
    assert all(torch.equal(k, q) for k, q in zip(kept, ref_kept))
    torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-5)


def test_swin_oracle_norms_and_projects_kept_tokens_only():
    """No key, and no norm, for a candidate the oracle drops."""
    model, sta = swin(24), swin(24, 'sta')
    rows = {}

    def record(name):

        def hook(module, args, output):
            rows.setdefault(name, []).append(args[0].shape[1])

        return hook

    handles = [
        m.layers[s].blocks[0].norm1.register_forward_hook(record((tag, s)))
        for tag, m in (('oracle', model), ('sta', sta)) for s in (1, 2, 3)
    ]
    x = swin_clip(b=1)
    with torch.no_grad():
        model(x), sta(x)
    for h in handles:
        h.remove()
    points = model.token_schedule(x.shape)
    for s, p in zip((1, 2, 3), points):
        assert rows['oracle', s] == [p['groups'] * p['kept']]
        assert rows['sta', s] == [p['groups'] * p['candidates']]
    oracle_flops = count_flops(model, (x, ))['flops']
    assert oracle_flops == analytic_swin_flops(
        SWIN['arch'], x.shape[2:], 24, 'oracle', SWIN['window_size'])
    assert oracle_flops < count_flops(sta, (x, ))['flops']


def test_oracle_at_r0_is_the_stock_model():
    for build, stock_cls, cfg, x in ((vit, VisionTransformer, VIT,
                                      vit_clip()),
                                     (swin, SwinTransformer3D, SWIN,
                                      swin_clip(b=1))):
        model = build(0)
        stock = stock_cls(**cfg)
        stock.eval()  # stock SwinTransformer3D.train() returns None
        stock.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            assert torch.equal(model(x), stock(x))


@pytest.mark.parametrize('build, r', [(vit, 4), (swin, 16)])
def test_benchmark_twin_is_the_oracle_with_the_same_weights(build, r):
    model = build(r, 'sta', fused=True)
    twin = oracle_twin(model)
    assert model.strategy == 'sta' and twin is not model
    assert (twin.strategy, twin.drop_number, twin.fused_attention) == (
        'oracle', r, True)
    assert not twin.training
    for (name, a), (_, b) in zip(model.state_dict().items(),
                                 twin.state_dict().items()):
        assert torch.equal(a, b), name
    x = vit_clip() if build is vit else swin_clip(b=1)
    with torch.no_grad():
        assert torch.equal(twin(x), build(r, fused=True)(x))


def test_benchmark_twin_refuses_what_has_no_oracle():
    with pytest.raises(ValueError, match="strategy='tome' merges tokens"):
        oracle_twin(vit(4, 'tome'))
    with pytest.raises(ValueError, match='drop_number=0 prunes nothing'):
        oracle_twin(swin(0))
    with pytest.raises(ValueError, match='no oracle for a Linear'):
        oracle_twin(nn.Linear(2, 2))
