_base_ = ['./_base_/sta_swinb_ssv2.py']

model = dict(backbone=dict(drop_number=256))
