# Video Swin-B, Something-Something V2: architecture and checkpoint.
_base_ = ['./sta_swin_ssv2.py']

# drop_path_rate as in Video Swin's own swin_base_patch244_window1677_sthv2.py;
# drop path is off at test time, so it changes no result.
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4),
    cls_head=dict(in_channels=1024))

# MMAction2 publishes no Video Swin checkpoint for SSV2: pass one on the
# command line (python tools/test.py CONFIG CHECKPOINT).
load_from = None
