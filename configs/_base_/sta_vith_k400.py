# ViT-H, Kinetics-400: architecture and checkpoint.
_base_ = ['./sta_vit_k400.py']

model = dict(
    backbone=dict(embed_dims=1280, depth=32, num_heads=16),
    cls_head=dict(in_channels=1280))

# No MMAction2 checkpoint exists for VideoMAE ViT-H: pass the original
# VideoMAE release on the command line (see README, model zoo).
load_from = None
