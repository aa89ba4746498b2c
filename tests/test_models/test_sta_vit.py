"""STAViT: equivalence to the stock ViT, the rule inside the model, errors."""
import pytest
import torch
from mmaction.models.backbones.vit_mae import VisionTransformer
from mmaction.registry import MODELS

from sta_mmaction.core import prune_layers
from sta_mmaction.models import STAViT

from ..test_core.test_sta_rule import reference_select

# A small ViT: 16 frames of 64x64 -> 8 slices of 4x4 = 16 tokens each.
SMALL = dict(
    img_size=64,
    patch_size=16,
    embed_dims=48,
    depth=6,
    num_heads=4,
    num_frames=16,
    norm_cfg=dict(type='LN', eps=1e-6))


def build_pair(drop_number, **extra):
    torch.manual_seed(0)
    stock = VisionTransformer(**SMALL, **extra).eval()
    pruned = STAViT(**SMALL, **extra, drop_number=drop_number).eval()
    pruned.load_state_dict(stock.state_dict(), strict=True)
    return stock, pruned


def clip(b=2, seed=0, size=64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 16, size, size, generator=gen)


def reference_forward(stock, x, r):
    """The stock blocks with the reference rule applied by hand.

    Keys are projected again here from each prune block's normalised input
    (the model itself reuses the attention's keys), so that both the key
    plumbing and the selection are checked independently.
    """
    layers = prune_layers(len(stock.blocks))
    groups = (8, 4, 2)
    tok = stock.patch_embed(x)[0] + stock.pos_embed  # (B, N, C)
    kept_all = []
    for b in range(x.shape[0]):
        t = tok[b:b + 1]
        pos = torch.arange(t.shape[1])
        kept = []
        for i, blk in enumerate(stock.blocks):
            y = blk(t)
            if i in layers:
                c = t.shape[-1]
                heads = blk.attn.num_heads
                w_k = blk.attn.qkv.weight[c:2 * c]  # (C, C), k has no bias
                k = blk.norm1(t) @ w_k.T  # (1, N, C)
                k = k.view(1, k.shape[1], heads, -1).mean(2)  # (1, N, C/h)
                p = layers.index(i)
                sel = reference_select(y[0], k[0], groups[p], r,
                                       reverse=p == 1)
                y = y[:, sel]
                pos = pos[sel]
                kept.append(pos)
            t = y
        kept_all.append((stock.fc_norm(t.mean(1))[0], kept))
    return kept_all


def test_zero_drop_is_bit_identical():
    stock, pruned = build_pair(0)
    x = clip()
    with torch.no_grad():
        assert torch.equal(stock(x), pruned(x))


def test_zero_drop_identical_with_layer_scale():
    stock, pruned = build_pair(0, init_values=0.1)
    x = clip()
    with torch.no_grad():
        assert torch.equal(stock(x), pruned(x))


@pytest.mark.parametrize('r', [2, 5, 8])
def test_pruned_matches_reference(r):
    stock, pruned = build_pair(r)
    x = clip(b=3, seed=r)
    with torch.no_grad():
        feats, kept = pruned.forward_pruned(x)
        ref = reference_forward(stock, x, r)
    for b, (ref_feat, ref_kept) in enumerate(ref):
        for point in range(3):
            assert kept[point][b].tolist() == ref_kept[point].tolist()
        torch.testing.assert_close(feats[b], ref_feat, atol=1e-5, rtol=1e-5)


def test_layer_scale_blocks_prune_too():
    stock, pruned = build_pair(4, init_values=0.1)
    x = clip(b=1)
    with torch.no_grad():
        feats, kept = pruned.forward_pruned(x)
        ref = reference_forward(stock, x, 4)
    assert kept[-1][0].tolist() == ref[0][1][-1].tolist()
    torch.testing.assert_close(feats[0], ref[0][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('r', [0, 3, 8])
def test_token_counts(r):
    _, pruned = build_pair(r)
    n = 128
    assert pruned.token_counts() == [n, n - 8 * r, n - 12 * r, n - 14 * r]
    if r:
        with torch.no_grad():
            _, kept = pruned.forward_pruned(clip())
        assert [k.shape[1] for k in kept] == pruned.token_counts()[1:]
        for k in kept:  # every kept position is a distinct real token
            assert all(len(set(row.tolist())) == k.shape[1] for row in k)


def test_batch_independent_and_deterministic():
    _, pruned = build_pair(6)
    x = clip(b=4, seed=3)
    with torch.no_grad():
        batch = pruned(x)
        again = pruned(x)
        alone = torch.cat([pruned(x[i:i + 1]) for i in range(4)])
    assert torch.equal(batch, again)
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


def test_real_size_counts():
    """16 x 224^2: 1568 -> 1568-8r -> 1568-12r -> 1568-14r."""
    vit = STAViT(
        embed_dims=64, depth=3, num_heads=2, drop_number=64).eval()
    with torch.no_grad():
        _, kept = vit.forward_pruned(torch.randn(1, 3, 16, 224, 224))
    assert [k.shape[1] for k in kept] == [1056, 800, 672]


def test_registered_and_strict_roundtrip(tmp_path):
    """A stock recognizer's checkpoint loads strictly into the STA one."""
    from ..conftest import save_mmengine_checkpoint
    from mmengine.runner import load_checkpoint
    head = dict(type='TimeSformerHead', num_classes=5, in_channels=48)
    torch.manual_seed(0)
    stock = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(type='VisionTransformer', **SMALL),
            cls_head=head)).eval()
    path = save_mmengine_checkpoint(stock.state_dict(), tmp_path / 'c.pth')
    sta = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(type='STAViT', drop_number=0, **SMALL),
            cls_head=head)).eval()
    load_checkpoint(sta, path, strict=True)
    assert set(sta.state_dict()) == set(stock.state_dict())
    x = clip(b=1).unsqueeze(1)  # (N, views, C, T, H, W)
    with torch.no_grad():
        assert torch.equal(stock.extract_feat(x)[0],
                           sta.extract_feat(x)[0])


@pytest.mark.parametrize('kwargs, match', [
    (dict(drop_number=-3), 'drop_number=-3 is negative'),
    (dict(drop_number=9), 'largest allowed drop_number is 8'),
    (dict(drop_number=2, num_frames=12), '6 temporal slices'),
    (dict(drop_number=2, num_frames=15, tubelet_size=3), '5 temporal'),
    (dict(drop_number=2, return_feat_map=True), 'return_feat_map'),
    (dict(drop_number=2, use_mean_pooling=False), 'use_mean_pooling'),
])
def test_bad_settings(kwargs, match):
    cfg = dict(SMALL)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=match):
        STAViT(**cfg)


@pytest.mark.parametrize('shape, match', [
    ((1, 3, 8, 64, 64), '16 frames'),
    ((1, 1, 16, 64, 64), '3 channels'),
    ((1, 3, 16, 60, 64), 'divisible by patch_size=16'),
    ((1, 3, 16, 32, 32), 'largest allowed drop_number is 2'),
    ((3, 16, 64, 64), r'\(B, C, T, H, W\)'),
])
def test_bad_clip(shape, match):
    _, pruned = build_pair(4)
    with pytest.raises(ValueError, match=match):
        pruned(torch.randn(*shape))


def test_other_resolution_prunes():
    """A larger grid interpolates positions, as stock, and prunes more."""
    _, pruned = build_pair(4)
    with torch.no_grad():
        feats, kept = pruned.forward_pruned(clip(b=1, size=96))
    assert feats.shape == (1, 48)
    assert [k.shape[1] for k in kept] == pruned.token_counts((16, 96, 96))[1:]


def test_zero_drop_accepts_what_stock_accepts():
    """At r=0 a partial patch or another grid is the stock model's output."""
    stock, pruned = build_pair(0)
    for size in ((60, 64), (96, 96)):
        x = torch.randn(1, 3, 16, *size)
        with torch.no_grad():
            assert torch.equal(stock(x), pruned(x))


def test_bad_clip_under_a_trace_names_plain_sizes():
    """fvcore traces the forward; the sizes in the error stay numbers."""
    from sta_mmaction.analysis import backbone_report
    _, pruned = build_pair(4)
    with pytest.raises(ValueError, match=r'hold \[4, 0, -8\] tokens'):
        backbone_report(pruned, (1, 3, 16, 32, 32))
