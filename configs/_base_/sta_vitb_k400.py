# ViT-B, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_vit_k400.py']

model = dict(
    backbone=dict(embed_dims=768, depth=12, num_heads=12),
    cls_head=dict(in_channels=768))

# MMAction2 VideoMAE ViT-B (K400 pre-trained and fine-tuned).
load_from = 'https://download.openmmlab.com/mmaction/v1.0/recognition/videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-860a3cd3.pth'  # noqa: E501
