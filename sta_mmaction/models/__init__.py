"""Registered STA backbones and the in-place conversion of stock ones."""
from .convert import STA_VERSIONS, convert_backbone, sta_version
from .sta_swin import STASwin3D
from .sta_vit import STAViT
from .videomae_pretrain import (PretrainedEncoderInit, VideoMAEPretrainer,
                                encoder_init_cfg)

__all__ = [
    'STA_VERSIONS', 'STASwin3D', 'STAViT', 'convert_backbone', 'sta_version',
    'PretrainedEncoderInit', 'VideoMAEPretrainer', 'encoder_init_cfg'
]
