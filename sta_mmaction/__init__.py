"""sta_mmaction: STA token pruning for MMAction2 1.x.

Importing the package (``custom_imports=dict(imports=['sta_mmaction'])``)
makes the PyPI mmaction2 1.2.0 wheel importable, routes mmengine's checkpoint
loading through the safe allow-list loader, and registers the STA backbones.
"""
from .utils import install_safe_loaders, patch_missing_drn
from .version import __version__

patch_missing_drn()
install_safe_loaders()

from . import models  # noqa: E402,F401  (registers the backbones)

__all__ = ['__version__']
