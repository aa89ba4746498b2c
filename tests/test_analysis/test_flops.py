"""GFLOPs per view against the paper's ViT table (16 x 224^2, backbone)."""
import pytest
import torch
from mmengine.config import Config

from sta_mmaction.analysis import (analytic_swin_flops, analytic_vit_flops,
                                   backbone_report, count_flops, view_shape)
from sta_mmaction.models import STASwin3D, STAViT

from ..conftest import ROOT

PAPER = {  # GFLOPs at r = 0 / 32 / 48 / 64
    's': ((384, 12, 6), (57, 42, 35, 29)),
    'b': ((768, 12, 12), (180, 136, 116, 96)),
    'l': ((1024, 24, 16), (597, 446, 376, 308)),
    'h': ((1280, 32, 16), (1192, 890, 748, 611)),
}
RS = (0, 32, 48, 64)


@pytest.mark.parametrize('size', ['s'])
def test_fvcore_matches_paper(size):
    """One full-size fvcore trace (ViT-S) against the paper and the
    analytic count; the other sizes hold the analytic count to the paper."""
    (dims, depth, heads), paper = PAPER[size]
    for r, want in zip(RS, paper):
        vit = STAViT(
            embed_dims=dims, depth=depth, num_heads=heads, drop_number=r)
        got = backbone_report(vit, (1, 3, 16, 224, 224))['gflops']
        assert abs(got / want - 1) < 0.02, (size, r, got, want)
        analytic = analytic_vit_flops(dims, depth, heads, 196, 8, r) / 1e9
        assert abs(analytic / got - 1) < 0.005, (size, r, analytic, got)


@pytest.mark.parametrize('dims,heads', [(768, 12), (1024, 16)])
def test_analytic_vit_equals_fvcore_at_other_widths(dims, heads):
    """The analytic count the ViT-B/L/H rows rely on, against fvcore at their
    widths (3 blocks, 112x112 frames, so that the trace is cheap)."""
    for r in (0, 4, 8):
        vit = STAViT(
            img_size=112,
            embed_dims=dims,
            depth=3,
            num_heads=heads,
            drop_number=r)
        got = backbone_report(vit, (1, 3, 16, 112, 112))['gflops']
        analytic = analytic_vit_flops(dims, 3, heads, 49, 8, r) / 1e9
        assert abs(analytic / got - 1) < 0.005, (dims, r, analytic, got)


@pytest.mark.parametrize('size', ['b', 'l', 'h'])
def test_analytic_matches_paper(size):
    """ViT-B/L/H are traced by the tool (``make flops``, see README); here the
    analytic count, which agrees with fvcore to 0.5% on ViT-S (above) and on
    small ViTs of other widths (below), is held to the paper."""
    (dims, depth, heads), paper = PAPER[size]
    for r, want in zip(RS, paper):
        got = analytic_vit_flops(dims, depth, heads, 196, 8, r) / 1e9
        assert abs(got / want - 1) < 0.02, (size, r, got, want)


def test_view_shape_from_configs():
    k400 = Config.fromfile(f'{ROOT}/configs/sta_vitb_k400_r0.py')
    ssv2 = Config.fromfile(f'{ROOT}/configs/sta_vitb_ssv2_r0.py')
    assert view_shape(k400) == (1, 3, 16, 224, 224)
    assert view_shape(ssv2) == (1, 3, 16, 224, 224)


def no_crop_config(tmp_path, resize, with_video=True):
    """A 64-pixel STAViT whose test pipeline ends in ``resize``, no crop."""
    from ..test_tools.test_dist_test import make_video
    if with_video:
        make_video(tmp_path / 'a.mp4', seed=0, frames=16)
        (tmp_path / 'list.txt').write_text('a.mp4 0\n')
    return Config(dict(
        model=dict(backbone=dict(type='STAViT', img_size=64, num_frames=16)),
        test_dataloader=dict(dataset=dict(
            type='VideoDataset', ann_file=str(tmp_path / 'list.txt'),
            data_prefix=dict(video=str(tmp_path)), pipeline=[
                dict(type='DecordInit'),
                dict(type='SampleFrames', clip_len=8, num_clips=2,
                     test_mode=True),
                dict(type='DecordDecode'), resize,
                dict(type='FormatShape', input_format='NCTHW'),
                dict(type='PackActionInputs')]))))


def test_view_shape_is_the_pipelines_not_img_size(tmp_path):
    fixed = dict(type='Resize', scale=(40, 32), keep_ratio=False)
    assert view_shape(no_crop_config(tmp_path, fixed, False)) == (
        1, 3, 8, 32, 40)
    ratio = dict(type='Resize', scale=(-1, 32))  # a 64 x 64 video
    assert view_shape(no_crop_config(tmp_path, ratio)) == (1, 3, 8, 32, 32)
    with pytest.raises(ValueError, match='keeps each video.s aspect ratio'
                       r'.*pass --shape'):
        view_shape(no_crop_config(tmp_path / 'none', ratio, False))


def test_shape_error_under_the_trace_prints_numbers():
    """fvcore's trace turns sizes into tensors: ``tensor(3)`` before."""
    vit = STAViT(img_size=32, embed_dims=32, depth=3, num_heads=2,
                 num_frames=8, drop_number=2)
    with pytest.raises(ValueError, match=r'= \(3, 8, 30, 30\)\.$'):
        backbone_report(vit, (1, 3, 8, 30, 30))


def test_sdpa_handle_counts_attention():
    class Sdpa(torch.nn.Module):

        def forward(self, q, k, v):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    q = torch.randn(2, 3, 10, 8)
    k = torch.randn(2, 3, 12, 8)
    v = torch.randn(2, 3, 12, 5)
    assert count_flops(Sdpa(), (q, k, v))['flops'] == 2 * 3 * 10 * 12 * (8 + 5)


#: Small Video Swin variants, each traced in about a second:
#: (arch, window_size, clip, r, strategy).
SMALL_SWINS = {
    # stock at r = 0, windows padded at stages 1-3 (16 -> 18, 8 -> 9, 4 -> 6)
    'padded_r0': (dict(embed_dims=16, depths=[2, 1, 1, 1],
                       num_heads=[1, 2, 2, 4]), (2, 3, 3), (8, 64, 64), 0,
                  'sta'),
    # STA at every prune point, padded windows, two blocks on kept tokens
    'padded_sta': (dict(embed_dims=16, depths=[1, 2, 2, 1],
                        num_heads=[1, 2, 2, 4]), (2, 3, 3), (8, 64, 64), 16,
                   'sta'),
    # clip padded to whole patches, an odd grid at a merging (3 -> 2), no
    # drop at stage 4 (8 // 16 = 0)
    'odd_temporal': (dict(embed_dims=16, depths=[1, 2, 1, 1],
                          num_heads=[2, 2, 4, 4]), (4, 4, 4), (15, 46, 46),
                     8, 'temporal'),
    # a strategy without scoring matmuls
    'random': (dict(embed_dims=16, depths=[1, 1, 1, 1],
                    num_heads=[1, 2, 2, 4]), (2, 4, 4), (8, 64, 64), 16,
               'random'),
    # query tiles (T=32 < N=98) at stage 2, shifted and padded windows
    'tiles': (dict(embed_dims=16, depths=[1, 2, 1, 1],
                   num_heads=[1, 2, 2, 4]), (2, 7, 7), (8, 64, 64), 24,
              'sta'),
}


@pytest.mark.parametrize('case', sorted(SMALL_SWINS))
def test_analytic_swin_equals_fvcore(case):
    """The by-hand count is fvcore's trace, op for op, on the structure."""
    arch, window, clip, r, strategy = SMALL_SWINS[case]
    torch.manual_seed(0)
    swin = STASwin3D(
        arch=arch,
        window_size=window,
        pretrained2d=False,
        drop_number=r,
        strategy=strategy).eval()
    x = torch.randn((1, 3) + clip)
    with torch.no_grad():
        traced = count_flops(swin, (x, ))['flops']
    assert analytic_swin_flops(arch, clip, r, strategy, window) == traced


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), r"arch='huge' is not a Video Swin arch"),
    (dict(arch=dict(embed_dims=96, depths=[2, 2, 6, 2])),
     'exactly the keys'),
    (dict(arch=dict(embed_dims=96, depths=[2, 2, 6], num_heads=[3, 6, 12])),
     '4 entries each'),
    (dict(arch='tiny', clip=(1, 3, 32, 224, 224)),
     r'clip=\(1, 3, 32, 224, 224\) must be the \(T, H, W\)'),
    (dict(arch='tiny', drop_number=-1), 'drop_number=-1 is negative'),
    (dict(arch='tiny', drop_number=320, strategy='tome'),
     "strategy='tome' is not a strategy of STASwin3D"),
    (dict(arch='tiny', clip=(20, 224, 224), drop_number=320),
     r'ceil\(20 / 2\) = 10'),
    (dict(arch='tiny', drop_number=4096), 'drop_number=4096 is too large'),
])
def test_analytic_swin_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        analytic_swin_flops(**kwargs)
