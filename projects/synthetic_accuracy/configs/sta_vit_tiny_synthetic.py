# A small STAViT trained at r=0 on a generated set of the accuracy benchmark
# (projects.synthetic_accuracy.accuracy.synthetic_sets.py: the shape set or the motion
# set): 16 frames of 112x112, tubelet 2, patch 16 -> 8 slices x 7x7 = 392
# tokens, 6 blocks of 128 channels and 2 heads (192 channels trained twice as
# slowly on the 2-core CPU here). The largest drop_number for this grid is
# 24. tools/accuracy_benchmark.py points it at each set, trains it from
# scratch or fine-tunes it from projects/synthetic_accuracy/configs/videomae_pretrain_tiny.py's
# encoder, and sweeps strategy x drop_number on the test split; see the
# README.
_base_ = ['mmaction::_base_/default_runtime.py']
custom_imports = dict(
    imports=['sta_mmaction', 'projects.synthetic_accuracy.accuracy'],
    allow_failed_imports=False)

num_classes = 6
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='STAViT',
        img_size=112,
        patch_size=16,
        embed_dims=128,
        depth=6,
        num_heads=2,
        mlp_ratio=4,
        qkv_bias=True,
        num_frames=16,
        tubelet_size=2,
        norm_cfg=dict(type='LN', eps=1e-6),
        drop_number=0,
        strategy='sta',
        seed=0),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes=num_classes,
        in_channels=128,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

dataset_type = 'VideoDataset'
data_root = 'work_dirs/accuracy_benchmark/data'

# No flips: left/right and up/down motion are different classes.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomCrop', size=112),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# One view per clip: one 16x1 clip, centre crop.
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=16,
        frame_interval=1,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='CenterCrop', crop_size=112),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=f'{data_root}/train_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=f'{data_root}/val_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/val'),
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=f'{data_root}/test_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/test'),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

max_epochs = 24
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=8)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# No gradient clipping, as VideoMAE fine-tunes: a norm of 1.0 clipped every
# step here (gradient norms stayed near 4) and slowed learning.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, ignore_last=False),
    checkpoint=dict(
        type='CheckpointHook', interval=max_epochs, save_best=None))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
work_dir = 'work_dirs/accuracy_benchmark/train'
