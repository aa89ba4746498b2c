"""Whole runs on top of the package: what the tools call."""
from .cli import USER_ERRORS, run_cli
from .testing import configure_test, default_work_dir, run_test
from .training import configure_train, run_train

__all__ = [
    'USER_ERRORS', 'configure_test', 'configure_train', 'default_work_dir',
    'run_cli', 'run_test', 'run_train'
]
