"""mmengine glue: hooks that report and guard STA test runs."""
from .checkpoint_hook import CheckpointKeysHook
from .hooks import TEST_HOOKS, STAReportHook, add_test_hooks, unwrap
from .pruning_hook import STAPruningHook, convert_backbone

__all__ = [
    'TEST_HOOKS', 'CheckpointKeysHook', 'STAPruningHook', 'STAReportHook',
    'add_test_hooks', 'convert_backbone', 'unwrap'
]
