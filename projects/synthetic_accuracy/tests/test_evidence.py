"""Evidence per token, the kept share, and the evidence oracles."""
import numpy as np
import pytest
import torch

from projects.synthetic_accuracy.accuracy.evidence import (
    EVIDENCE_COVER, EvidenceOracle, kept_evidence, slot_order,
    token_evidence)
from sta_mmaction.core import token_counts
from sta_mmaction.models import STAViT

#: A 2x2-token, 4-slice STAViT: 16 tokens, r up to 1 per group.
TINY = dict(img_size=32, patch_size=16, embed_dims=16, depth=3, num_heads=2,
            num_frames=8, tubelet_size=2)


def test_token_evidence_follows_the_view_geometry():
    mask = np.zeros((6, 10, 10), bool)
    mask[2, 1:3, 1:5] = True  # frame 2: rows 1-2, columns 1-4
    meta = dict(frame_inds=np.arange(1, 5), scale_factor=(1., 1.),
                crop_bbox=(1, 1, 9, 9))  # frames 1-4, an 8x8 crop
    cover = token_evidence(mask, meta, tubelet=2, patch=4)
    assert cover.shape == (2, 2, 2)
    expected = np.zeros((2, 2, 2))
    # frame 2 is the second frame of slice 0; the object fills the crop's
    # rows 0-1 and columns 0-3: half the rows of the top-left token
    expected[0, 0, 0] = 8 / 32
    np.testing.assert_allclose(cover, expected)
    halved = dict(meta, scale_factor=(0.5, 0.5), crop_bbox=(0, 0, 4, 4))
    assert token_evidence(mask, halved, 2, 2).shape == (2, 2, 2)
    with pytest.raises(ValueError, match='does not tile'):
        token_evidence(mask, dict(meta, crop_bbox=(0, 0, 7, 8)), 2, 4)


def test_kept_evidence_is_the_share_of_covered_tokens_left():
    cover = torch.tensor([[0.5, 0.0, EVIDENCE_COVER, 0.05],
                          [0.0, 0.0, 0.0, 0.0]])
    kept = [torch.tensor([[0, 1, 2], [0, 1, 2]]),
            torch.tensor([[1, 2], [1, 2]])]
    share = kept_evidence(kept, cover)
    np.testing.assert_allclose(share[0], [1.0, 0.5])  # 2 evidence tokens
    assert np.isnan(share[1]).all()  # no evidence at all


def test_slot_order_follows_the_oracle_strategy():
    n, slices, r = 16, 4, 1
    order = slot_order(n, slices, r)
    assert sorted(order.tolist()) == list(range(n))
    counts = token_counts(n // slices, slices, r)  # [16, 12, 10, 9]
    dropped = [counts[i] - counts[i + 1] for i in range(len(counts) - 1)]
    # 'oracle' keeps the first n - r of each group: at the first point the
    # last position of each slice goes first
    assert order[:dropped[0]].tolist() == [3, 7, 11, 15]
    assert len(order) - sum(dropped) == counts[-1]


def _tiny(r):
    torch.manual_seed(0)
    model = STAViT(**TINY).eval()
    model.init_sta(r, 'oracle')
    return model


def test_oracle_with_an_identity_ranking_is_the_oracle_strategy():
    model = _tiny(1)
    x = torch.randn(2, 3, 8, 32, 32)
    slots = slot_order(16, 4, 1)
    cover = torch.empty(2, 16)
    cover[:, slots] = torch.arange(16.)  # ranks equal the slot order
    with torch.no_grad():
        plain, plain_kept = model.forward_pruned(x)
        with EvidenceOracle(model, True, 1) as oracle:
            oracle.set_cover(cover)
            feat, kept = model.forward_pruned(x)
    assert torch.equal(oracle.perm, torch.arange(16).expand(2, -1))
    assert torch.equal(feat, plain)
    for a, b in zip(oracle.true_positions(kept), plain_kept):
        assert torch.equal(a, b)


def test_oracles_keep_or_drop_the_most_covered_tokens():
    model = _tiny(1)
    x = torch.randn(1, 3, 8, 32, 32)
    cover = torch.zeros(1, 16)
    cover[0, [1, 6, 13]] = torch.tensor([0.9, 0.5, 0.3])  # 3 evidence
    shares = {}
    for keep in (True, False):
        with torch.no_grad(), EvidenceOracle(model, keep, 1) as oracle:
            oracle.set_cover(cover)
            _, kept = model.forward_pruned(x)
        shares[keep] = kept_evidence(oracle.true_positions(kept), cover)
    np.testing.assert_allclose(shares[True], [[1, 1, 1]])
    np.testing.assert_allclose(shares[False], [[0, 0, 0]])


def test_oracle_refuses_a_wrong_setting_or_a_missing_cover():
    model = _tiny(1)
    with pytest.raises(ValueError, match="strategy='oracle'"):
        EvidenceOracle(model, True, 2).__enter__()
    with EvidenceOracle(model, True, 1), pytest.raises(ValueError,
                                                       match='set_cover'):
        model.forward_pruned(torch.randn(1, 3, 8, 32, 32))
    assert not model.pos_drop._forward_hooks  # the hook is gone
