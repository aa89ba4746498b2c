# Something-Something V2 test protocol of Video Swin-B: 32 frames sampled
# uniformly, 1 clip x 3 crops, short side 224, window (16, 7, 7),
# 174 classes.
_base_ = ['./sta_swin_k400.py']

model = dict(
    backbone=dict(arch='base', window_size=(16, 7, 7)),
    cls_head=dict(in_channels=1024, num_classes=174))

dataset_type = 'VideoDataset'
data_root_val = 'data/sthv2/videos'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

test_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=32, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline))

# There is no public MMAction2 checkpoint of Video Swin on SSV2: pass one
# on the command line (python tools/test.py CONFIG CHECKPOINT).
load_from = None
