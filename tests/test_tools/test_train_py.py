"""tools/train.py end to end on a handful of tiny generated clips."""
import os.path as osp
import subprocess
import sys

import pytest
from mmaction.registry import MODELS
from mmengine.config import Config

from sta_mmaction.datasets.synthetic_motion import make_synthetic_motion
from sta_mmaction.utils.checkpoint_io import load_recognizer_weights

from ..conftest import ROOT

TOOL = osp.join(ROOT, 'tools', 'train.py')
BASE = osp.join(ROOT, 'configs', 'synthetic',
                'sta_vit_tiny_synthetic_motion.py')

#: The motion config at 8 frames of 32x32, patch 8 (4 slices x 16 tokens),
#: 3 blocks of 32 channels, one epoch, no validation.
TINY = '''
_base_ = [{base!r}]
model = dict(
    backbone=dict(img_size=32, patch_size=8, embed_dims=32, depth=3,
                  num_frames=8),
    cls_head=dict(num_classes=2, in_channels=32))
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomCrop', size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(ann_file={ann!r}, data_prefix=dict(video={video!r}),
                 pipeline=train_pipeline))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = [dict(type='ConstantLR', factor=1.0)]
default_hooks = dict(checkpoint=dict(interval=1))
log_level = 'WARNING'
'''


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    root = tmp_path_factory.mktemp('train_py')
    data = make_synthetic_motion(
        str(root / 'data'), dict(train=2),
        num_classes=2,
        num_frames=10,
        side=32,
        kind='motion')
    config = root / 'tiny.py'
    config.write_text(
        TINY.format(
            base=BASE,
            ann=data['train'],
            video=osp.join(data['root'], 'train')))
    return str(config)


def train(config, work_dir, *options):
    cmd = [sys.executable, TOOL, config, '--work-dir', str(work_dir)]
    if options:
        cmd += ['--cfg-options', *options]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_trains_with_sta_on_and_writes_a_loadable_checkpoint(
        tiny_config, tmp_path):
    proc = train(tiny_config, tmp_path, 'model.backbone.drop_number=2')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()
    cfg = Config.fromfile(tiny_config)
    model = MODELS.build(cfg.model)
    # every tensor of the recognizer, nothing else, same shapes
    load_recognizer_weights(model, str(ckpt))


def test_a_misspelt_option_fails_with_a_suggestion(tiny_config, tmp_path):
    proc = train(tiny_config, tmp_path, 'model.backbone.drop_numbr=2')
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'did you mean drop_number?' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'epoch_1.pth').exists()
