# ViT-S, Something-Something V2: architecture and checkpoint.
_base_ = ['./sta_vit_ssv2.py']

model = dict(
    backbone=dict(embed_dims=384, depth=12, num_heads=6),
    cls_head=dict(in_channels=384))

# No MMAction2 checkpoint exists for VideoMAE on SSV2: pass the original
# VideoMAE release on the command line (see README, model zoo).
load_from = None
