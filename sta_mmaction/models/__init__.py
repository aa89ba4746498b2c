"""Registered STA backbones."""
from .sta_vit import STAViT

__all__ = ['STAViT']
