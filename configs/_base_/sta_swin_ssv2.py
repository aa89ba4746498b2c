# Something-Something V2 test protocol of Video Swin: 32 frames sampled
# uniformly, 1 clip x 3 crops, short side 224, window (16, 7, 7), on the
# data of ./ssv2_test.py (174 classes). The arch and the checkpoint are set
# by sta_swinb_ssv2.py.
_base_ = ['./sta_swin_k400.py', './ssv2_test.py']

model = dict(
    backbone=dict(window_size=(16, 7, 7)),
    cls_head=dict(num_classes=_base_.ssv2_test.num_classes))

dataset_type = _base_.ssv2_test.dataset_type
data_root_val = _base_.ssv2_test.data_root_val
ann_file_test = _base_.ssv2_test.ann_file_test

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
    dataset=dict(_base_.ssv2_test.dataset, pipeline=test_pipeline))
