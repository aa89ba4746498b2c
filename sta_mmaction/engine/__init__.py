"""mmengine glue: hooks that report and guard STA test runs, the test loop."""
from .amp import STATestLoop
from .checkpoint_hook import CheckpointKeysHook
from .hooks import TEST_HOOKS, STAReportHook, add_test_hooks, unwrap
from .provenance import ProvenanceHook
from .pruning_hook import STAPruningHook, convert_backbone
from .run_logging import MainRankJsonLoggerHook

__all__ = [
    'TEST_HOOKS', 'CheckpointKeysHook', 'MainRankJsonLoggerHook',
    'ProvenanceHook', 'STAPruningHook', 'STAReportHook', 'STATestLoop',
    'add_test_hooks',
    'convert_backbone', 'unwrap'
]
