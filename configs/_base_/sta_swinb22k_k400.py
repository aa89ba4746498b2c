# Video Swin-B, ImageNet-22k pre-trained, Kinetics-400: the paper's Swin-B
# Kinetics-400 row (82.7 top-1 unpruned). Same architecture as
# ./sta_swinb_k400.py; drop_path_rate as in Video Swin's own
# swin_base_patch244_window877_kinetics400_22k.py (off at test time).
_base_ = ['./sta_swinb_k400.py']

model = dict(backbone=dict(drop_path_rate=0.2))

# Video Swin's own release (SwinTransformer/Video-Swin-Transformer v1.0.4).
# MMAction2 publishes no ImageNet-22k Swin-B. The file is in the original
# (mmaction 0.x) layout: it is converted on load (backbone.norm ->
# backbone.norm3), see sta_mmaction/utils/swin_convert.py.
load_from = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.4/swin_base_patch244_window877_kinetics400_22k.pth'  # noqa: E501
