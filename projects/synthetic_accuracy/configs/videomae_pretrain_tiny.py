# Miniature VideoMAE pre-training (sta_mmaction/models/videomae_pretrain.py)
# of the encoder of sta_vit_tiny_synthetic_motion.py on the generated set's
# training clips: tube masking of 90% of the 7x7 positions of each of the 8
# slices (44 of 49 masked, 40 of 392 tokens visible), a 2-block 64-channel
# decoder, MSE on the masked tubes' pixels (as the data preprocessor
# normalises them, not per tube; see normalize_target below). No labels,
# no validation. tools/accuracy_benchmark.py copies the fine-tune backbone's
# encoder keys here (match_encoder), sets the epochs and the data, trains,
# and fine-tunes from the checkpoint with encoder_init_cfg(checkpoint).
_base_ = ['mmaction::_base_/default_runtime.py']
custom_imports = dict(
    imports=['sta_mmaction', 'projects.synthetic_accuracy.accuracy'],
    allow_failed_imports=False)

model = dict(
    type='VideoMAEPretrainer',
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
        drop_number=0),
    mask_ratio=0.9,
    decoder_dims=64,
    decoder_depth=2,
    decoder_heads=2,
    # VideoMAE's default standardises every target tube; the tubes of these
    # generated clips are then texture noise: the loss stayed at 0.998, the
    # variance of the target itself, after 40 epochs. On plain pixels (its
    # 'w/o norm' ablation) the loss can fall below predicting the visible
    # tokens' mean colour, because the moving object is visible elsewhere
    # in the clip.
    normalize_target=False,
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

dataset_type = 'VideoDataset'
data_root = 'work_dirs/accuracy_benchmark/data'

# The fine-tune config's training pipeline: no flips, since left/right and
# up/down motion are different classes of the motion set.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=16, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomCrop', size=112),
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
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

max_epochs = 20
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

# VideoMAE's recipe scaled down: AdamW with betas (0.9, 0.95), weight decay
# 0.05, no gradient clipping, a linear warm-up, then cosine to a small floor.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05))
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
work_dir = 'work_dirs/accuracy_benchmark/pretrain'
