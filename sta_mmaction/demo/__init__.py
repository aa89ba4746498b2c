"""The demo: generated K400-format clips and quick MMAction2 test runs.

Import by full path (``sta_mmaction.demo``); ``import sta_mmaction`` does
not load it.
"""
from .protocol import (ProgressBarHook, build_recognizer, demo_test_cfg,
                       quick_views, run_test, save_random_checkpoint)
from .synthetic import ANN_FILE, CLASSES, make_k400_set, render_clip

__all__ = [
    'ANN_FILE', 'CLASSES', 'ProgressBarHook', 'build_recognizer',
    'demo_test_cfg', 'make_k400_set', 'quick_views', 'render_clip', 'run_test',
    'save_random_checkpoint'
]
