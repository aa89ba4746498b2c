"""Tube masking: whole tubes, the exact ratio, a fresh draw per sample."""
import pytest
import torch

from projects.synthetic_accuracy.accuracy.masking import masked_per_slice, patch_targets, tube_mask


def test_whole_tubes_are_masked():
    mask = tube_mask(4, 8, 49, 0.9, torch.Generator().manual_seed(0))
    assert mask.shape == (4, 8 * 49) and mask.dtype == torch.bool
    slices = mask.reshape(4, 8, 49)  # (B, T0, P), time-major tokens
    assert torch.equal(slices, slices[:, :1].expand(-1, 8, -1))


@pytest.mark.parametrize('ratio, per_slice', [(0.9, 44), (0.75, 37),
                                              (0.5, 24), (0.1, 5)])
def test_exact_ratio(ratio, per_slice):
    mask = tube_mask(6, 4, 49, ratio)
    assert masked_per_slice(49, ratio) == per_slice
    assert (mask.reshape(6, 4, 49).sum(-1) == per_slice).all()


def test_each_sample_draws_its_own_positions():
    mask = tube_mask(8, 2, 49, 0.9, torch.Generator().manual_seed(1))
    assert len({tuple(m.tolist()) for m in mask}) == 8
    # the same generator state gives the same mask
    again = tube_mask(8, 2, 49, 0.9, torch.Generator().manual_seed(1))
    assert torch.equal(mask, again)


def test_positions_are_uniform():
    mask = tube_mask(4000, 1, 10, 0.3, torch.Generator().manual_seed(2))
    share = mask.float().mean(0)  # (P, )
    assert torch.allclose(share, torch.full((10, ), 0.3), atol=0.03)


@pytest.mark.parametrize('ratio', [0, 1, 1.0, -0.1, 1.5, True, '0.9', 0.001,
                                   0.999])
def test_bad_ratio_is_a_value_error(ratio):
    with pytest.raises(ValueError, match='ratio'):
        tube_mask(2, 8, 49, ratio)


@pytest.mark.parametrize('name, args', [('batch', (0, 8, 49)),
                                        ('slices', (2, 0, 49)),
                                        ('tokens_per_slice', (2, 8, 2.5))])
def test_bad_sizes_are_value_errors(name, args):
    with pytest.raises(ValueError, match=name):
        tube_mask(*args)


def test_patch_targets_are_standardised_tubes():
    clips = torch.rand(2, 3, 4, 16, 16)
    raw = patch_targets(clips, 2, 8, normalize=False)
    assert raw.shape == (2, 2 * 2 * 2, 2 * 8 * 8 * 3)
    # token 1 is slice 0, row 0, column 1; its values are channel last
    tube = clips[0, :, 0:2, 0:8, 8:16].permute(1, 2, 3, 0).flatten()
    assert torch.equal(raw[0, 1], tube)
    norm = patch_targets(clips, 2, 8).reshape(2, 8, 128, 3)
    assert torch.allclose(norm.mean(2), torch.zeros(2, 8, 3), atol=1e-5)
    assert torch.allclose(norm.std(2), torch.ones(2, 8, 3), atol=1e-3)
    # a per-channel affine map (the data preprocessor's) cancels
    scaled = patch_targets(clips * 58. + 120., 2, 8).reshape(2, 8, 128, 3)
    assert torch.allclose(scaled, norm, atol=1e-3)
    with pytest.raises(ValueError, match='tile'):
        patch_targets(clips, 3, 8)
