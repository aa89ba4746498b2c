"""vid-TLDR: saliency from the attention map and saliency-weighted merging.

The references re-state the paper's rule token by token: saliency is the
negative entropy of a token's head-averaged attention, min-max normalised
over the clip; tokens below the mean are background (0), the others
``(s - mean) / max``; a token merged away adds its size times its saliency
to its partner, which becomes the mass-weighted mean.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmaction.models.backbones.vit_mae import VisionTransformer

from sta_mmaction.core import bipartite_match, merge_tokens, saliency
from sta_mmaction.models import STASwin3D, STAViT

from .test_rlt import still_clip
from .test_strategies import SMALL, clip, reference_match


def reference_saliency(attn):
    """(N, N) probabilities -> list of saliencies, token by token."""
    s = [sum(p * math.log(p) for p in row if p > 0) for row in attn.tolist()]
    lo, hi = min(s), max(s)
    s = [(v - lo) / (hi - lo) if hi > lo else 0. for v in s]
    mean = sum(s) / len(s)
    top = max(v - mean for v in s)
    return [0. if v < mean or top <= 0 else (v - mean) / top for v in s]


def reference_merge(x, size, weight, groups, r):
    """One clip: ToMe's matching on ``x`` per group, vid-TLDR's masses."""
    n = x.shape[0] // groups
    kept_all, out, mass = [], [], []
    for g in range(groups):
        kept, src, dst = reference_match(x[g * n:(g + 1) * n], r)
        for d in kept:
            parts = [(float(size[g * n + d]), x[g * n + d])]
            parts += [(float(size[g * n + s] * weight[g * n + s]),
                       x[g * n + s]) for s, t in zip(src, dst) if t == d]
            total = sum(m for m, _ in parts)
            kept_all.append(g * n + d)
            out.append(sum(m * v for m, v in parts) / total)
            mass.append(total)
    return kept_all, torch.stack(out), torch.tensor(mass)


def probabilities(b=2, n=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, n, generator=gen).mul(3).softmax(-1)


def test_saliency_matches_reference():
    attn = probabilities()
    sal = saliency(attn)
    assert sal.shape == (2, 32) and float(sal.min()) >= 0
    for b in range(2):
        torch.testing.assert_close(sal[b],
                                   torch.tensor(reference_saliency(attn[b])))
    assert float(sal.max()) == 1.0 and (sal == 0).any()  # background


def test_saliency_of_flat_attention_is_zero():
    flat = torch.full((1, 8, 8), 1 / 8)
    assert torch.equal(saliency(flat), torch.zeros(1, 8))
    one_hot = torch.eye(8)[None]  # p log p at p = 0 is 0, not NaN
    assert torch.equal(saliency(one_hot), torch.zeros(1, 8))


@pytest.mark.parametrize('r', [1, 4, 8])
def test_weighted_merge_matches_reference(r):
    gen = torch.Generator().manual_seed(r)
    x = torch.randn(2, 64, 6, generator=gen)
    size = torch.rand(2, 64, generator=gen) + 1
    weight = saliency(probabilities(n=64, seed=r))
    kept, src, dst = bipartite_match(x, 4, r)
    merged, mass = merge_tokens(x, size, kept, src, dst, weight)
    assert merged.shape == (2, 64 - 4 * r, 6)
    for b in range(2):
        ref_kept, ref_x, ref_mass = reference_merge(x[b], size[b], weight[b],
                                                    4, r)
        assert kept[b].tolist() == ref_kept
        torch.testing.assert_close(merged[b], ref_x)
        torch.testing.assert_close(mass[b], ref_mass)
    plain = merge_tokens(x, size, kept, src, dst)
    ones = merge_tokens(x, size, kept, src, dst, torch.ones(2, 64))
    assert all(torch.equal(p, q) for p, q in zip(plain, ones))


def test_first_merge_in_the_model_matches_reference():
    """Block 0's attention map (by hand) and output decide the first merge."""
    r = 3
    torch.manual_seed(0)
    stock = VisionTransformer(**SMALL).eval()
    model = STAViT(**SMALL, drop_number=r, strategy='vidtldr').eval()
    model.load_state_dict(stock.state_dict())
    x = clip(b=2, seed=1)
    with torch.no_grad():
        _, kept = model.forward_pruned(x)
        tok = stock.patch_embed(x)[0] + stock.pos_embed  # (B, N, C)
        blk = stock.blocks[0]
        attn = blk.attn
        bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias),
                          attn.v_bias])
        q, k, _ = F.linear(blk.norm1(tok), attn.qkv.weight,
                           bias).chunk(3, -1)  # (B, N, C) each
        heads = attn.num_heads
        q, k = (t.view(2, 128, heads, -1).transpose(1, 2) for t in (q, k))
        probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1).mean(1)
        out = blk(tok)
    for b in range(2):
        weight = torch.tensor(reference_saliency(probs[b]))
        ref_kept, _, _ = reference_merge(out[b], torch.ones(128), weight, 8,
                                         r)
        assert kept[0][b].tolist() == ref_kept


def test_only_prune_blocks_leave_fused_attention(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, 'scaled_dot_product_attention',
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    torch.manual_seed(0)
    model = STAViT(**SMALL, drop_number=3, strategy='vidtldr',
                   fused_attention=True).eval()
    with torch.no_grad():
        model(clip(b=1))
    assert len(calls) == SMALL['depth'] - 3  # blocks 0, 2, 4 run softmax


@pytest.mark.parametrize('strategy', ['vidtldr', 'rlt'])
def test_a_clip_keeps_its_tokens_in_any_batch(strategy):
    torch.manual_seed(0)
    model = STAViT(**SMALL, drop_number=4, strategy=strategy).eval()
    x = still_clip(b=3, seed=2)
    with torch.no_grad():
        feats, kept = model.forward_pruned(x)
        for b in range(3):
            one, alone = model.forward_pruned(x[b:b + 1])
            assert all(torch.equal(k[b], a[0]) for k, a in zip(kept, alone))
            torch.testing.assert_close(feats[b], one[0], atol=1e-5,
                                       rtol=1e-5)
    assert [k.shape[1] for k in kept] == model.token_counts()[1:]


@pytest.mark.parametrize('strategy, why', [
    ('vidtldr', "vid-TLDR's merged tokens stand for patches from anywhere"),
    ('rlt', 'RLT keeps the first temporal slice whole'),
])
def test_swin_refuses(strategy, why):
    with pytest.raises(ValueError, match=f"strategy='{strategy}' is not "
                       'available for this backbone') as err:
        STASwin3D(arch=dict(embed_dims=24, depths=[2, 2, 2, 2],
                            num_heads=[1, 2, 2, 4]), drop_number=8,
                  strategy=strategy)
    assert why in str(err.value)
