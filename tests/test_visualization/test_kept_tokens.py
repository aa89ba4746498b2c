"""kept_masks: the pictures take their cells from the backbone itself."""
import numpy as np
import pytest
import torch

from sta_mmaction.models import STASwin3D, STAViT
from sta_mmaction.datasets import single_view_pipeline
from sta_mmaction.visualization.kept_tokens import (BLANK, blank_pruned,
                                                    kept_masks, point_names)


@pytest.mark.parametrize('kind', ['vit', 'swin'])
def test_masks_are_the_backbones_kept_grids(kind):
    """Each mask is ``kept_grids`` of the view, nothing re-derived."""
    torch.manual_seed(0)
    if kind == 'vit':
        backbone = STAViT(
            img_size=64, embed_dims=48, depth=3, num_heads=4, drop_number=4)
        x = torch.randn(1, 3, 16, 64, 64)
    else:
        backbone = STASwin3D(
            arch=dict(
                embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
            window_size=(2, 4, 4),
            pretrained2d=False,
            drop_number=16)
        # 72 pixels: odd stage grids, which pad (9 -> 5 -> 3 cells)
        x = torch.randn(1, 3, 8, 72, 72)
    calls, given = [], []
    real = backbone.kept_grids

    def recording(kept, shape):
        calls.append(tuple(shape))
        given.append(real(kept, shape))
        return given[-1]

    backbone.kept_grids = recording
    masks, stride, counts, _ = kept_masks(backbone, x)
    assert calls == [tuple(x.shape)] and stride == 2
    for mask, cells, count in zip(masks, given[0], counts):
        assert isinstance(mask, np.ndarray)
        assert np.array_equal(mask, cells[0].numpy())
        assert count == dict(kept=int(mask.sum()), total=mask.size)
    if kind == 'swin':
        assert [m.shape for m in masks] == [(4, 9, 9), (4, 5, 5), (4, 3, 3)]


def test_adaptive_mask_is_the_clips_own_count():
    torch.manual_seed(0)
    backbone = STAViT(img_size=64, embed_dims=48, depth=3, num_heads=4,
                      rlt_threshold=0.5)
    x = torch.randn(1, 3, 16, 64, 64)
    x[:, :, 8:] = x[:, :, 7:8]  # still from tubelet 5 on
    masks, _, counts, _ = kept_masks(backbone, x)
    assert len(masks) == len(point_names(backbone)) == 1
    assert counts[0]['kept'] == int(backbone.clip_token_counts(x)[0]) == 80
    assert masks[0][0].all() and not masks[0][5:].any()


def test_single_view_of_every_multi_view_step():
    """VideoMAE's samplers and three crops give one clip, one crop too."""
    from mmengine.config import Config
    cfg = Config(dict(test_pipeline=[
        dict(type='DecordInit'),
        dict(type='VideoMAEKineticsSample', clip_len=16, frame_interval=4,
             num_clips=5, test_mode=True),
        dict(type='VideoMAEResize', short_side=224),
        dict(type='VideoMAEThreeCrop', crop_size=224),
        dict(type='ThreeCrop', crop_size=224),
        dict(type='FormatShape', input_format='NCTHW'),
    ]))
    steps = single_view_pipeline(cfg)
    assert steps[1]['num_clips'] == 1
    assert steps[3] == steps[4] == dict(type='CenterCrop', crop_size=224)


@pytest.mark.parametrize('kind', ['vit', 'swin'])
def test_masks_count_the_kept_tokens(kind):
    """Cells marked kept are exactly the tokens each prune point keeps."""
    torch.manual_seed(0)
    if kind == 'vit':
        backbone = STAViT(
            img_size=64, embed_dims=48, depth=6, num_heads=4, drop_number=4)
        x = torch.randn(1, 3, 16, 64, 64)
    else:
        backbone = STASwin3D(
            arch=dict(
                embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
            window_size=(2, 4, 4),
            pretrained2d=False,
            drop_number=16)
        x = torch.randn(1, 3, 8, 64, 64)
    masks, stride, counts, _ = kept_masks(backbone, x)
    assert stride == 2
    assert [
        int(m.sum()) for m in masks
    ] == backbone.token_counts(*(() if kind == 'vit' else ((8, 64, 64), )))[1:]
    assert [c['kept'] for c in counts] == [int(m.sum()) for m in masks]
    frame = np.full((64, 64, 3), 7, np.uint8)
    drawn = blank_pruned(frame, masks[-1][0])
    blank = (drawn == BLANK).all(-1)
    cell = 64 // masks[-1].shape[1]
    assert blank.sum() == (~masks[-1][0]).sum() * cell * cell


def test_corrupt_video_is_named(tmp_path):
    """visualize_tokens.py on a file no reader opens: one named error."""
    from mmengine.config import Config
    from sta_mmaction.datasets import CorruptVideoError
    from sta_mmaction.visualization.kept_tokens import load_view
    from ..conftest import ROOT
    video = tmp_path / 'corrupt.mp4'
    video.write_bytes(b'\x00 not a video ' * 500)
    cfg = Config.fromfile(f'{ROOT}/configs/sta_vits_k400_r64.py')
    with pytest.raises(CorruptVideoError,
                       match=r'Cannot read video .*corrupt.mp4: DecordInit'):
        load_view(cfg, str(video))
