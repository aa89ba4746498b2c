"""mmengine glue: hooks that prune, report and guard test runs; the loop."""
from .checkpoint_hook import CheckpointKeysHook
from .hooks import (TEST_HOOKS, FiniteLossHook, NonFiniteLossError,
                    STAReportHook, add_test_hooks)
from .provenance import ProvenanceHook
from .pruning_hook import STAPruningHook
from .run_logging import MainRankJsonLoggerHook
from .test_loop import STATestLoop

__all__ = [
    'TEST_HOOKS', 'CheckpointKeysHook', 'FiniteLossHook',
    'MainRankJsonLoggerHook', 'NonFiniteLossError',
    'ProvenanceHook', 'STAPruningHook', 'STAReportHook', 'STATestLoop',
    'add_test_hooks'
]
