# Kinetics-400 test protocol of Video Swin (32 frames at interval 2,
# 4 clips x 3 crops, short side 224, averaged probabilities), from
# MMAction2's own Swin-T config, with the backbone swapped for STASwin3D.
# The arch and the checkpoint are set by sta_swin{t,s,b}_k400.py,
# drop_number by each leaf config.
_base_ = [
    'mmaction::recognition/swin/'
    'swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py'
]
custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)
default_scope = 'mmaction'

# Test only: no ImageNet inflation at build time (the checkpoint, from
# load_from or the command line, holds the whole recognizer).
# STARecognizer3D: Recognizer3D that checks every load (docs/python_api.md).
model = dict(
    type='STARecognizer3D',
    backbone=dict(
        type='STASwin3D',
        drop_number=0,
        pretrained=None,
        pretrained2d=False,
        window_size=(8, 7, 7)),
    cls_head=dict(num_classes=400))

dataset_type = 'VideoDataset'
data_root_val = 'data/kinetics400/videos_val'
ann_file_test = 'data/kinetics400/kinetics400_val_list_videos.txt'

test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=32,
        frame_interval=2,
        num_clips=4,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))
test_evaluator = dict(type='AccMetric')
test_cfg = dict(type='TestLoop')
# The inherited train/val settings are never built by tools/test.py.
