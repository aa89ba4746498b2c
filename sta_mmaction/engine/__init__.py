"""mmengine glue: hooks that report and guard STA test runs."""
from .hooks import CheckpointKeysHook, STAReportHook, unwrap
from .pruning_hook import STAPruningHook, convert_backbone

__all__ = [
    'CheckpointKeysHook', 'STAPruningHook', 'STAReportHook',
    'convert_backbone', 'unwrap'
]
