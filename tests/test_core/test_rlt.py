"""RLT: the change of each patch, the fixed and the adaptive budget.

The references re-state the paper's rule token by token: a token of tubelet
``t > 0`` changed by the mean absolute difference of its patch between the
last frame of tubelet ``t`` and the first frame of tubelet ``t - 1``; the
first tubelet is always kept; the native rule keeps a change above the
threshold.
"""
import math

import pytest
import torch

from sta_mmaction.core import (pack_kept, patch_change, rlt_keep, rlt_select,
                               select_tokens)
from sta_mmaction.models import STAViT

from .test_strategies import SMALL, clip


def reference_change(video, tubelet, patch):
    """(C, T, H, W) -> list of changes, token by token, time-major."""
    _, t, h, w = video.shape
    out = []
    for s in range(t // tubelet):
        for i in range(h // patch):
            for j in range(w // patch):
                if s == 0:
                    out.append(math.inf)
                    continue
                rows, cols = slice(i * patch, (i + 1) * patch), slice(
                    j * patch, (j + 1) * patch)
                now = video[:, s * tubelet + tubelet - 1, rows, cols]
                before = video[:, (s - 1) * tubelet, rows, cols]
                out.append(float((now - before).abs().mean()))
    return out


def reference_drop(change, k):
    """Positions kept when the ``k`` smallest changes go (ties: earliest)."""
    ranked = sorted(range(len(change)), key=lambda p: (change[p], p))
    return sorted(ranked[k:])


def still_clip(b=2, seed=0):
    """Clips whose later frames repeat earlier ones in places."""
    x = clip(b, seed)
    x[:, :, 6:10] = x[:, :, 2:3]  # tubelets 3, 4: still except an edge
    x[:, :, 9, :, :16] += 1.0
    x[1, :, 12:] = x[1, :, 11:12]  # clip 1 ends still
    return x


@pytest.mark.parametrize('tubelet, patch', [(2, 16), (1, 8), (3, 16)])
def test_change_matches_reference(tubelet, patch):
    x = still_clip()[:, :, :12]
    change = patch_change(x, tubelet, patch)
    n = (12 // tubelet) * (64 // patch) ** 2
    assert change.shape == (2, n) and change.dtype == torch.float32
    for b in range(2):
        torch.testing.assert_close(
            change[b], torch.tensor(reference_change(x[b], tubelet, patch)))


def test_change_is_float32_under_autocast():
    x = still_clip().to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        change = patch_change(x, 2, 16)
    assert change.dtype == torch.float32


@pytest.mark.parametrize('k', [0, 7, 64])
def test_select_drops_the_least_changed(k):
    x = still_clip()
    change = patch_change(x, 2, 16)
    kept = rlt_select(change, k)
    assert kept.shape == (2, 128 - k)
    for b in range(2):
        assert kept[b].tolist() == reference_drop(change[b].tolist(), k)
        assert set(range(16)) <= set(kept[b].tolist())  # first tubelet


def test_select_tokens_dispatches_rlt_per_clip():
    x = still_clip()
    change = patch_change(x, 2, 16)
    feats = torch.randn(2, 128, 8)
    idx = select_tokens(feats, None, 8, 4, strategy='rlt', change=change)
    assert torch.equal(idx, rlt_select(change, 32))
    with pytest.raises(ValueError, match="strategy='rlt' ranks"):
        select_tokens(feats, None, 8, 4, strategy='rlt')


@pytest.mark.parametrize('threshold', [0.0, 0.1, 0.9])
def test_keep_and_pack_match_reference(threshold):
    x = still_clip(b=3)
    change = patch_change(x, 2, 16)
    keep = rlt_keep(change, threshold)
    idx, valid = pack_kept(keep)
    for b in range(3):
        ref = [p for p, c in enumerate(reference_change(x[b], 2, 16))
               if c > threshold]
        assert idx[b][valid[b]].tolist() == ref
        assert int(valid[b].sum()) == len(ref)
    assert idx.shape[1] == max(int(k.sum()) for k in keep)
    assert torch.equal(valid.sum(1), keep.sum(1))


def vit(**kw):
    torch.manual_seed(0)
    return STAViT(**SMALL, **kw).eval()


def test_fixed_budget_in_the_model():
    """Each point drops the clip's least changed survivors, G * r of them."""
    x, r = still_clip(b=2, seed=3), 3
    model = vit(drop_number=r, strategy='rlt')
    with torch.no_grad():
        _, kept = model.forward_pruned(x)
    assert [k.shape[1] for k in kept] == model.token_counts()[1:]
    for b in range(2):
        change = reference_change(x[b], 2, 16)
        alive = list(range(128))
        for point, groups in enumerate((8, 4, 2)):
            sub = [change[p] for p in alive]
            alive = [alive[i] for i in reference_drop(sub, groups * r)]
            assert kept[point][b].tolist() == alive


def test_adaptive_counts_padding_and_batch():
    """A clip keeps its own tokens, alone or padded in any batch."""
    x = still_clip(b=2, seed=5)
    model = vit(rlt_threshold=0.5)
    assert model.strategy == 'rlt'
    counts = model.clip_token_counts(x)
    assert counts.tolist() == [
        sum(c > 0.5 for c in reference_change(x[b], 2, 16)) for b in range(2)]
    assert counts[0] > counts[1]  # clip 1 ends still
    with torch.no_grad():
        feats, kept = model.forward_pruned(x)
        alone = [model.forward_pruned(x[b:b + 1]) for b in range(2)]
        swapped = model(x.flip(0))
    assert kept[0].shape == (2, int(counts.max()))
    for b in range(2):
        torch.testing.assert_close(feats[b], alone[b][0][0], atol=1e-5,
                                   rtol=1e-5)
        assert set(kept[0][b].tolist()) == set(alone[b][1][0][0].tolist())
    torch.testing.assert_close(swapped, feats.flip(0), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='use clip_token_counts'):
        model.token_counts()


def test_adaptive_fused_equals_explicit():
    x = still_clip(b=2, seed=6)
    plain, fused = vit(rlt_threshold=0.5), vit(rlt_threshold=0.5,
                                               fused_attention=True)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), fused(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('kw, match', [
    (dict(rlt_threshold=0.1, drop_number=2), 'set drop_number=0'),
    (dict(rlt_threshold=0.1, strategy='random'), "strategy='random'"),
    (dict(rlt_threshold=-1.0), 'finite number >= 0'),
    (dict(rlt_threshold=True), 'finite number >= 0'),
    (dict(rlt_threshold=0.1, return_feat_map=True), 'return_feat_map'),
])
def test_bad_threshold(kw, match):
    with pytest.raises(ValueError, match=match):
        STAViT(**dict(SMALL, **kw))
