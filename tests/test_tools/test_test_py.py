"""tools/test.py end to end: K400 protocol on real clips, decord, 5x3 views."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from ..conftest import ROOT, save_mmengine_checkpoint

CONFIG = osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py')


def run_test_py(config, ckpt, work_dir, *options, ok=True):
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), config, ckpt, '--work-dir',
        str(work_dir), *options
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if ok and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def data_options(k400_set, *extra):
    return [
        '--cfg-options',
        f'test_dataloader.dataset.ann_file={k400_set["ann_file"]}',
        f'test_dataloader.dataset.data_prefix.video={k400_set["video_root"]}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', *extra
    ]


@pytest.fixture(scope='module')
def vits_checkpoint(tmp_path_factory):
    """Random ViT-S recognizer weights, saved the way mmengine saves them."""
    from mmengine.config import Config
    from mmaction.registry import MODELS
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'vits_random.pth'
    return save_mmengine_checkpoint(model.state_dict(), path, cfg.pretty_text)


def test_k400_protocol_with_r_override(k400_set, vits_checkpoint, tmp_path):
    # one real clip (15 views of ViT-S): the protocol, not the set size
    one = tmp_path / 'one_clip.txt'
    with open(k400_set['ann_file']) as f:
        one.write_text(f.readline())
    k400_set = dict(k400_set, ann_file=str(one))
    proc = run_test_py(CONFIG, vits_checkpoint, tmp_path / 'work',
                       *data_options(k400_set, 'model.backbone.drop_number=64'))
    log = proc.stdout + proc.stderr
    assert 'STAViT on one (1, 3, 16, 224, 224) view: 28.8' in log
    [metrics_file] = glob.glob(str(tmp_path / 'work' / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.loads(f.read().splitlines()[-1])
    assert metrics['tokens'] == [1568, 1056, 800, 672]
    assert abs(metrics['gflops_per_view'] - 28.8) < 0.1
    for key in ('acc/top1', 'acc/top5', 'acc/mean1'):
        assert 0.0 <= metrics[key] <= 1.0


def test_views_are_5x3_decord(k400_set):
    """The dumped scores come from 5 clips x 3 crops of each real clip."""
    from mmengine.config import Config
    from mmaction.registry import DATASETS
    cfg = Config.fromfile(CONFIG)
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.ann_file = k400_set['ann_file']
    ds_cfg.data_prefix = dict(video=k400_set['video_root'])
    assert [t['type'] for t in ds_cfg.pipeline][:3] == [
        'DecordInit', 'VideoMAEKineticsSample', 'DecordDecode'
    ]
    sample = DATASETS.build(ds_cfg)[0]
    assert tuple(sample['inputs'].shape) == (15, 3, 16, 224, 224)


def test_missing_backbone_weights_fail(k400_set, tmp_path):
    """A file without the backbone stops the run instead of using noise."""
    wrong = save_mmengine_checkpoint(
        {'cls_head.fc_cls.weight': torch.zeros(400, 384)},
        tmp_path / 'wrong.pth')
    proc = run_test_py(CONFIG, wrong, tmp_path / 'wd',
                       *data_options(k400_set), ok=False)
    assert proc.returncode != 0
    assert 'wrong.pth does not fit the model' in proc.stderr
    assert "missing (162 of the model's 163 keys)" in proc.stderr


def test_no_checkpoint_is_an_error(tmp_path):
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'),
        osp.join(ROOT, 'configs', 'sta_vits_ssv2_r0.py')
    ],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    assert proc.returncode != 0
    assert 'No checkpoint' in proc.stderr
