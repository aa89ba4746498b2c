"""Registered STA backbones, their in-place conversion, what a config runs."""
from .convert import (STA_VERSIONS, convert_backbone, sta_class, sta_version,
                      unwrap)
from .pruning import Pruning, apply_pruning, pruning_of, set_drop_number
from .recognizer import STARecognizer3D
from .sta_swin import STASwin3D
from .sta_vit import STAViT

__all__ = ['STA_VERSIONS', 'Pruning', 'STARecognizer3D', 'STASwin3D', 'STAViT',
           'apply_pruning', 'convert_backbone', 'pruning_of',
           'set_drop_number', 'sta_class', 'sta_version', 'unwrap']
