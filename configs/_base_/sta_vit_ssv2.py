# Something-Something V2 test protocol of VideoMAE's ssv2.py, which the
# paper's ViT rows used: 16 frames from segment-based indices, 2 clips x 3
# crops along the long side, short side 224 (sta_mmaction/datasets/
# sampling.py), on the data of ./ssv2_test.py (174 classes).
_base_ = ['./sta_vit_k400.py', './ssv2_test.py']

model = dict(cls_head=dict(num_classes=_base_.ssv2_test.num_classes))

dataset_type = _base_.ssv2_test.dataset_type
data_root_val = _base_.ssv2_test.data_root_val
ann_file_test = _base_.ssv2_test.ann_file_test

test_pipeline = [
    dict(type='DecordInit'),
    dict(type='VideoMAESSV2Sample', clip_len=16, num_clips=2, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='VideoMAEResize', short_side=224),
    dict(type='VideoMAEThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# MMAction2's UniformSample, Resize and ThreeCrop instead (other frames, a
# long side rounded rather than truncated, the last crop a pixel short of the
# edge when the margin is odd). To test with them, write in a leaf config:
#   test_dataloader = dict(
#       dataset=dict(pipeline=_base_.mmaction2_test_pipeline))
mmaction2_test_pipeline = [
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
