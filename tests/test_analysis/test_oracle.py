"""The oracles: STA's blocks on STA's token counts, survivors sliced."""
import pytest
import torch
from torch import nn

from sta_mmaction.analysis.oracle import (_first_per_group, oracle_of,
                                          swin_oracle, vit_oracle)
from sta_mmaction.models import STASwin3D, STAViT

from ..test_models.test_sta_swin import SMALL as SWIN
from ..test_models.test_sta_swin import clip as swin_clip
from ..test_models.test_sta_vit import SMALL as VIT
from ..test_models.test_sta_vit import clip as vit_clip


def vit(r, fused=False, **extra):
    torch.manual_seed(0)
    return STAViT(
        **VIT, drop_number=r, fused_attention=fused, **extra).eval()


def swin(r, fused=False):
    torch.manual_seed(0)
    return STASwin3D(**SWIN, drop_number=r, fused_attention=fused).eval()


def test_each_group_keeps_its_first_tokens():
    x = torch.arange(12).view(1, 12, 1)  # 3 groups of 4
    assert _first_per_group(x, 3, 2).flatten().tolist() == [0, 1, 4, 5, 8, 9]
    pos = torch.arange(12).view(2, 6)  # (B, N) positions, 2 groups of 3
    assert _first_per_group(pos, 2, 1).tolist() == [[0, 3], [6, 9]]


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('r', [4, 8])
def test_vit_oracle_keeps_sta_token_counts(r, fused):
    model = vit(r, fused)
    x = vit_clip()
    with torch.no_grad():
        out, kept = model.forward_pruned(x)
        oracle, counts = vit_oracle(model, x)
    assert counts == [k.shape[1] for k in kept] == model.token_counts()[1:]
    assert oracle.shape == out.shape
    # other tokens survive, so the features differ
    assert not torch.allclose(oracle, out)


@pytest.mark.parametrize('fused', [False, True])
def test_vit_oracle_at_r0_is_the_model(fused):
    """Nothing to slice: the oracle runs exactly the model's blocks."""
    model = vit(0, fused)
    x = vit_clip()
    with torch.no_grad():
        oracle, counts = vit_oracle(model, x)
        out = model(x)
    assert counts == [16 * 8] * 3
    torch.testing.assert_close(oracle, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('fused', [False, True])
def test_swin_oracle_keeps_sta_token_counts(fused):
    model = swin(24, fused)
    x = swin_clip(b=1)
    with torch.no_grad():
        out, kept = model.forward_pruned(x)
        oracle, counts = swin_oracle(model, x)
    expected = model.token_counts(tuple(x.shape[2:]))[1:]
    assert counts == [k.shape[1] for k in kept] == expected
    assert counts == [160, 28, 7]  # 256 - 4 * 24, 64 - 6 * 6, 16 - 9
    assert oracle.shape == out.shape == (1, 192, 1, 1, 1)
    assert torch.isfinite(oracle).all()


def test_oracle_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="strategy='tome' merges tokens"):
        vit_oracle(vit(4, strategy='tome'), vit_clip())
    with pytest.raises(ValueError, match='drop_number=0 prunes nothing'):
        swin_oracle(swin(0), swin_clip(b=1))
    for model in (vit(4, strategy='tome'), swin(0)):  # before any clip
        with pytest.raises(ValueError, match='tome|prunes nothing'):
            oracle_of(model)
    with pytest.raises(ValueError, match='no oracle for a Linear'):
        oracle_of(nn.Linear(2, 2))
    # oracle_of hands back the backbone's own oracle
    model = vit(4)
    x = vit_clip(b=1)
    with torch.no_grad():
        torch.testing.assert_close(oracle_of(model)(x), vit_oracle(model,
                                                                    x)[0])
