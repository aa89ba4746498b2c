"""The demo: generated K400-format clips and quick MMAction2 test runs.

Import by full path (``sta_mmaction.demo``); ``import sta_mmaction`` does
not load it.
"""
from .protocol import (ProgressBarHook, build_recognizer, demo_test_cfg,
                       quick_views, run_test, save_random_checkpoint)
from .run import format_summary, prepare_data, run_demo
from .synthetic import ANN_FILE, DEMO_CLASSES, make_k400_set

__all__ = [
    'ANN_FILE', 'DEMO_CLASSES', 'ProgressBarHook', 'build_recognizer',
    'demo_test_cfg', 'format_summary', 'make_k400_set', 'prepare_data',
    'quick_views', 'run_demo', 'run_test', 'save_random_checkpoint'
]
