# Kinetics-400 test protocol of VideoMAE (16 frames, interval 4,
# 5 clips x 3 crops, short side 224, averaged probabilities), from
# MMAction2's own config, with the backbone swapped for STAViT.
_base_ = [
    'mmaction::recognition/videomae/'
    'vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py'
]
custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)

# STARecognizer3D: Recognizer3D that checks every load (also through
# MMAction2's init_recognizer and inferencer) and never predicts on random
# weights (docs/python_api.md).
model = dict(
    type='STARecognizer3D', backbone=dict(type='STAViT', drop_number=0))

# The views of VideoMAE's kinetics.py, which the paper's ViT rows used
# (sta_mmaction/datasets/sampling.py): its clip starts, its resize and its
# crop offsets, none of which MMAction2's SampleFrames / Resize / ThreeCrop
# reproduce exactly.
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='VideoMAEKineticsSample',
        clip_len=16,
        frame_interval=4,
        num_clips=5,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='VideoMAEResize', short_side=224),
    dict(type='VideoMAEThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# MMAction2's own views of the same protocol. To test with them, write in a
# leaf config:
#   test_dataloader = dict(
#       dataset=dict(pipeline=_base_.mmaction2_test_pipeline))
mmaction2_test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=16,
        frame_interval=4,
        num_clips=5,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
