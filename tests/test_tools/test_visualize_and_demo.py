"""The kept-token pictures and the demo, end to end on small inputs."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from sta_mmaction.demo import DEMO_CLASSES, make_k400_set, run_demo
from sta_mmaction.demo.visualize import visualize_config
from sta_mmaction.synthetic import CLASSES, render_clip
from sta_mmaction.models import STASwin3D, STAViT
from sta_mmaction.visualization.kept_tokens import (BLANK, blank_pruned,
                                                    kept_masks)
from ..conftest import ROOT


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    return make_k400_set(
        str(tmp_path_factory.mktemp('clips')), num_clips_per_class=1)


def test_generated_clips_move_and_differ():
    frames = {kind: render_clip(kind, seed=3, num_frames=64, side=240)
              for kind in CLASSES}
    for kind, clip in frames.items():
        assert clip.shape == (64, 240, 240, 3) and clip.dtype == np.uint8
        # content moves: the first and the middle frame differ clearly
        assert np.abs(clip[0].astype(int) - clip[32]).mean() > 2, kind
    assert not np.array_equal(frames[CLASSES[0]], frames[CLASSES[1]])


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


def test_visualize_generated_clip_vit(clips, tmp_path):
    video = osp.join(clips['video_root'], clips['videos'][0][0])
    out = str(tmp_path / 'square.png')
    visualize_config(
        video, osp.join(ROOT, 'configs', 'sta_vits_k400_r64.py'), out=out,
        gif=True)
    img = imread(out)
    assert img.shape[0] > 300 and img.shape[1] > img.shape[0]
    assert osp.getsize(osp.splitext(out)[0] + '.gif') > 0


def test_visualize_generated_clip_swin(clips, tmp_path):
    video = osp.join(clips['video_root'], clips['videos'][1][0])
    out = str(tmp_path / 'disc.png')
    visualize_config(
        video,
        osp.join(ROOT, 'configs', 'sta_swint_k400_r192.py'),
        out=out,
        cfg_options={
            'model.backbone.drop_number': 32,
            'test_dataloader.dataset.pipeline.1.clip_len': 16,
            'test_dataloader.dataset.pipeline.3.scale': (-1, 112),
            'test_dataloader.dataset.pipeline.4.crop_size': 112
        })
    assert imread(out).ndim == 3


def test_visualize_stock_config_with_hook(clips, tmp_path):
    """A stock MMAction2 config pruned by STAPruningHook can be drawn."""
    config = tmp_path / 'stock_hook.py'
    config.write_text(
        "_base_ = ['mmaction::recognition/videomae/"
        "vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py']\n"
        "custom_imports = dict(imports=['sta_mmaction'])\n"
        'model = dict(backbone=dict(embed_dims=48, depth=6, num_heads=4),\n'
        '             cls_head=dict(in_channels=48))\n'
        "custom_hooks = [dict(type='STAPruningHook', drop_number=48)]\n")
    video = osp.join(clips['video_root'], clips['videos'][2][0])
    result = visualize_config(video, str(config), out=str(tmp_path / 'a.png'))
    assert [c['kept'] for c in result['counts']] == [1184, 992, 896]
    assert result['shape'] == (1, 3, 16, 224, 224)


def test_visualize_real_clip(shared_data, tmp_path):
    out = str(tmp_path / 'demo.png')
    visualize_config(
        osp.join(shared_data, 'demo.mp4'),
        osp.join(ROOT, 'configs', 'sta_vits_k400_r64.py'),
        out=out)
    assert imread(out).ndim == 3


def test_demo_end_to_end_reduced(tmp_path):
    """tools/demo.py's whole path on 3 generated clips, a 112^2 ViT-S view."""
    work_dir = tmp_path / 'demo'
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'demo.py'), '--work-dir',
        str(work_dir), '--num-clips-per-class', '1', '--drop-number', '16',
        '--repeats', '1', '--warmup', '0', '--cfg-options',
        'model.backbone.img_size=112',
        'test_dataloader.dataset.pipeline.3.short_side=112',
        'test_dataloader.dataset.pipeline.4.crop_size=112'
    ], capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert 'RANDOM WEIGHTS' in out
    assert '| r ' in out and 'speed-up' in out
    with open(work_dir / 'summary.json') as f:
        summary = json.load(f)
    assert summary['random_weights'] is True
    r0, r16 = summary['rows']
    assert r0['tokens'] == [392, 392, 392, 392]
    assert r16['tokens'] == [392, 264, 200, 168]
    assert r16['gflops_per_view'] < r0['gflops_per_view']
    for row in summary['rows']:
        assert set(row['metrics']) == {'acc/top1', 'acc/top5', 'acc/mean1'}
        assert row['speedup'] > 0
    assert osp.isfile(summary['picture'])
    assert osp.isfile(work_dir / 'data' / 'kinetics400_val_list_videos.txt')


def test_demo_classes_and_bad_settings(tmp_path):
    """The demo draws the shared generator's first classes; r=0 is refused."""
    data = make_k400_set(str(tmp_path), 1, num_frames=8, side=64)
    assert [label for _, label in data['videos']] == [0, 1, 2]
    assert [name.rsplit('_', 1)[0]
            for name, _ in data['videos']] == list(DEMO_CLASSES)
    with pytest.raises(ValueError, match='--drop-number=0 must be >= 1'):
        run_demo(osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py'), 0)
