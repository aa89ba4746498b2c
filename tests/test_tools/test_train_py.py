"""tools/train.py end to end on a handful of tiny generated clips."""
import os.path as osp
import subprocess
import sys

import pytest
from mmaction.registry import MODELS
from mmengine.config import Config

from sta_mmaction.synthetic import make_k400_set
from sta_mmaction.utils.checkpoint_io import load_recognizer_weights

from ..conftest import ROOT

TOOL = osp.join(ROOT, 'tools', 'train.py')

#: An STAViT of 8 frames of 32x32, patch 8 (4 slices x 16 tokens), 3 blocks
#: of 32 channels, trained for one epoch, no validation.
TINY = '''
_base_ = ['mmaction::_base_/default_runtime.py']
custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)
model = dict(
    type='Recognizer3D',
    backbone=dict(type='STAViT', img_size=32, patch_size=8, embed_dims=32,
                  depth=3, num_heads=2, num_frames=8, tubelet_size=2,
                  qkv_bias=True, norm_cfg=dict(type='LN', eps=1e-6)),
    cls_head=dict(type='TimeSformerHead', num_classes=2, in_channels=32,
                  average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375],
                           format_shape='NCTHW'))
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
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file={ann!r},
                 data_prefix=dict(video={video!r}), pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
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
    data = make_k400_set(
        str(root / 'data'), 2, classes=('square', 'ring'), num_frames=10,
        side=32)
    config = root / 'tiny.py'
    config.write_text(
        TINY.format(ann=data['ann_file'], video=data['video_root']))
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
