"""mmengine glue: hooks that report and guard STA test runs."""
from .hooks import CheckpointKeysHook, STAReportHook, unwrap

__all__ = ['CheckpointKeysHook', 'STAReportHook', 'unwrap']
