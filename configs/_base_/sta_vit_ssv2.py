# Something-Something V2 test protocol of VideoMAE: 16 frames sampled
# uniformly, 2 clips x 3 crops, short side 224, on the data of
# ./ssv2_test.py (174 classes).
_base_ = ['./sta_vit_k400.py', './ssv2_test.py']

model = dict(cls_head=dict(num_classes=_base_.ssv2_test.num_classes))

dataset_type = _base_.ssv2_test.dataset_type
data_root_val = _base_.ssv2_test.data_root_val
ann_file_test = _base_.ssv2_test.ann_file_test

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
    dataset=dict(_base_.ssv2_test.dataset, pipeline=test_pipeline))
