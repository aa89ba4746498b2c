"""The synthetic accuracy experiment: generated sets, small models, sweeps.

Imports ``sta_mmaction``; the library never imports this package.
Importing it registers ``VideoMAEPretrainer`` and its weight initialiser.
"""
import sta_mmaction  # noqa: F401  (patches mmaction before it is imported)
from .videomae_pretrain import (PretrainedEncoderInit, VideoMAEPretrainer,
                                encoder_init_cfg)

__all__ = ['PretrainedEncoderInit', 'VideoMAEPretrainer', 'encoder_init_cfg']
