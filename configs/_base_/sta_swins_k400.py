# Video Swin-S, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_swin_k400.py']

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.2),
    cls_head=dict(in_channels=768))

# Video Swin's own release (SwinTransformer/Video-Swin-Transformer v1.0.4),
# Swin-S, ImageNet-1k pre-trained, Kinetics-400, 80.6 top-1 in its README.
# The paper's row.
# The file is in the original (mmaction 0.x) layout: it is converted on load
# (backbone.norm -> backbone.norm3), see sta_mmaction/utils/swin_convert.py.
load_from = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.4/swin_small_patch244_window877_kinetics400_1k.pth'  # noqa: E501
# MMAction2's retrained file (MMAction2 1.x layout), one option away:
# python tools/test.py CONFIG URL, with URL =
# https://download.openmmlab.com/mmaction/v1.0/recognition/swin/swin-small-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb/swin-small-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb_20220930-e91ab986.pth  # noqa: E501
