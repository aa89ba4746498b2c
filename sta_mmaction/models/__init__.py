"""Registered STA backbones."""
from .sta_swin import STASwin3D
from .sta_vit import STAViT

__all__ = ['STASwin3D', 'STAViT']
