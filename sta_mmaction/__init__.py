"""sta_mmaction: STA token pruning for MMAction2 1.x.

Importing the package (``custom_imports=dict(imports=['sta_mmaction'])``)
makes the PyPI mmaction2 1.2.0 wheel importable, routes mmengine's checkpoint
loading through the safe allow-list loader, and registers the STA backbones.
"""
import warnings

from .utils import (check_stack, install_safe_loaders, patch_missing_drn,
                    skip_broken_multimodal)
from .version import __version__

# mmcv-lite has no compiled ops; its warning about one we never use would
# greet every user on every run.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
# mmengine 0.10.7 resolves ``mmaction::`` configs through pkg_resources; the
# pin setuptools<81 keeps it working, the deprecation notice is not ours.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

check_stack()
patch_missing_drn()
skip_broken_multimodal()
install_safe_loaders()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .models import convert_backbone  # noqa: E402

__all__ = ['__version__', 'convert_backbone']
