# ViT-S, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_vit_k400.py']

model = dict(
    backbone=dict(embed_dims=384, depth=12, num_heads=6),
    cls_head=dict(in_channels=384))

# The paper's ViT-S row is the original VideoMAE ViT-S K400 file (VideoMAE's
# model zoo, original layout, converted on load), which has no direct
# download URL: pass it on the command line (see README, model zoo).
# MMAction2's VideoMAE V2 ViT-S (distilled from ViT-g, 83.6 top-1) is another
# model; to test it instead, pass
# https://download.openmmlab.com/mmaction/v1.0/recognition/videomaev2/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400_20230510-25c748fd.pth  # noqa: E501
load_from = None
