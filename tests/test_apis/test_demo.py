"""The demo and its kept-token pictures, end to end on small inputs."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from matplotlib.image import imread

from sta_mmaction.apis.demo import run_demo, visualize_config
from sta_mmaction.synthetic import DEMO_CLASSES, make_k400_set
from ..conftest import ROOT


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    return make_k400_set(
        str(tmp_path_factory.mktemp('clips')), num_clips_per_class=1)


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
        '--repeats', '1', '--cfg-options',
        'model.backbone.img_size=112',
        'test_dataloader.dataset.pipeline.3.short_side=112',
        'test_dataloader.dataset.pipeline.4.crop_size=112'
    ], capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert 'RANDOM WEIGHTS' in out
    assert '| r ' in out and 'speed-up' in out
    # chance-level accuracy of random weights is not printed as numbers
    assert 'random weights: accuracy not meaningful' in out
    assert 'top-1' not in out
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
