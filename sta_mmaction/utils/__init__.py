"""Install-time fixes for the pinned OpenMMLab stack."""
from .checkpoint import (UNSAFE_ENV, UnsafeCheckpointError,
                         install_safe_loaders, load_checkpoint_file,
                         register_safe_globals, set_unsafe_full_unpickle)
from .mmaction_compat import patch_missing_drn

__all__ = [
    'UNSAFE_ENV', 'UnsafeCheckpointError', 'install_safe_loaders',
    'load_checkpoint_file', 'register_safe_globals',
    'set_unsafe_full_unpickle', 'patch_missing_drn'
]
