# ViT-S, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_vit_k400.py']

model = dict(
    backbone=dict(embed_dims=384, depth=12, num_heads=6),
    cls_head=dict(in_channels=384))

# MMAction2 VideoMAE V2 ViT-S (distilled from ViT-g, K710 pre-trained).
load_from = 'https://download.openmmlab.com/mmaction/v1.0/recognition/videomaev2/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400_20230510-25c748fd.pth'  # noqa: E501
