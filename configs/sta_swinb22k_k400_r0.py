_base_ = ['./_base_/sta_swinb22k_k400.py']

model = dict(backbone=dict(drop_number=0))
