# ViT-L, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_vit_k400.py']

model = dict(
    backbone=dict(embed_dims=1024, depth=24, num_heads=16),
    cls_head=dict(in_channels=1024))

# MMAction2 VideoMAE ViT-L (K400 pre-trained and fine-tuned).
load_from = 'https://download.openmmlab.com/mmaction/v1.0/recognition/videomae/vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-229dbb03.pth'  # noqa: E501
