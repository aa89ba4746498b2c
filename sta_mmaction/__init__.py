"""sta_mmaction: STA token pruning for MMAction2 1.x.

Importing the package (``custom_imports=dict(imports=['sta_mmaction'])``)
makes the PyPI mmaction2 1.2.0 wheel importable, routes mmengine's checkpoint
loading through the safe allow-list loader, and registers the STA backbones.
"""
import warnings

from .utils import install_safe_loaders, patch_missing_drn
from .version import __version__

# mmcv-lite has no compiled ops; its warning about one we never use would
# greet every user on every run.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

patch_missing_drn()
install_safe_loaders()

from . import engine, models  # noqa: E402,F401  (registers modules)

__all__ = ['__version__']
