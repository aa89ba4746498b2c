# Video Swin-B, Something-Something V2: architecture and checkpoint.
_base_ = ['./sta_swin_ssv2.py']

# drop_path_rate as in Video Swin's own swin_base_patch244_window1677_sthv2.py;
# drop path is off at test time, so it changes no result.
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4),
    cls_head=dict(in_channels=1024))

# Video Swin's own release (SwinTransformer/Video-Swin-Transformer v1.0.4),
# Swin-B fine-tuned from Kinetics-400 (ImageNet-22k), 69.6 top-1: the paper's
# row. MMAction2 publishes no Video Swin SSV2 file. The file is in the
# original (mmaction 0.x) layout: it is converted on load (backbone.norm ->
# backbone.norm3), see sta_mmaction/utils/swin_convert.py.
load_from = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.4/swin_base_patch244_window1677_sthv2.pth'  # noqa: E501
