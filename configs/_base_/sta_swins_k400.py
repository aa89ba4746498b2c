# Video Swin-S, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_swin_k400.py']

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.2),
    cls_head=dict(in_channels=768))

# MMAction2 Video Swin-S (ImageNet-1k pre-trained, Kinetics-400).
load_from = 'https://download.openmmlab.com/mmaction/v1.0/recognition/swin/swin-small-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb/swin-small-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb_20220930-e91ab986.pth'  # noqa: E501
