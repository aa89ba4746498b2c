_base_ = ['./_base_/sta_vitb_k400.py']

model = dict(backbone=dict(drop_number=48))
