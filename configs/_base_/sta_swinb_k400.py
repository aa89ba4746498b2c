# Video Swin-B, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_swin_k400.py']

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3),
    cls_head=dict(in_channels=1024))

# MMAction2 Video Swin-B (ImageNet-1k pre-trained, Kinetics-400).
load_from = 'https://download.openmmlab.com/mmaction/v1.0/recognition/swin/swin-base-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb/swin-base-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb_20220930-182ec6cc.pth'  # noqa: E501
