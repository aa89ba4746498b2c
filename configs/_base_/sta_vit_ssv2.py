# Something-Something V2 test protocol of VideoMAE: 16 frames sampled
# uniformly, 2 clips x 3 crops, short side 224, 174 classes.
_base_ = ['./sta_vit_k400.py']

model = dict(cls_head=dict(num_classes=174))

dataset_type = 'VideoDataset'
data_root_val = 'data/sthv2/videos'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

test_pipeline = [
    dict(type='DecordInit'),
    dict(type='UniformSample', clip_len=16, num_clips=2, test_mode=True),
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
