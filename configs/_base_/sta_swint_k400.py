# Video Swin-T, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_swin_k400.py']

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    cls_head=dict(in_channels=768))

# MMAction2 Video Swin-T (ImageNet-1k pre-trained, Kinetics-400).
load_from = 'https://download.openmmlab.com/mmaction/v1.0/recognition/swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb_20220930-241016b2.pth'  # noqa: E501
