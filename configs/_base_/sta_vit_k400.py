# Kinetics-400 test protocol of VideoMAE (16 frames, interval 4,
# 5 clips x 3 crops, short side 224, averaged probabilities), from
# MMAction2's own config, with the backbone swapped for STAViT.
_base_ = [
    'mmaction::recognition/videomae/'
    'vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py'
]
custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)

model = dict(backbone=dict(type='STAViT', drop_number=0))
