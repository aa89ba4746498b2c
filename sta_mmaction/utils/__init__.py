"""Install-time fixes for the pinned OpenMMLab stack, and checkpoint I/O."""
from .checkpoint import (UNSAFE_ENV, UnsafeCheckpointError,
                         install_safe_loaders, load_checkpoint_file,
                         register_safe_globals, set_unsafe_full_unpickle)
from .mmaction_compat import patch_missing_drn
from .videomae_convert import (convert_videomae_state_dict,
                               describe_videomae_state, find_videomae_state,
                               is_original_videomae)

__all__ = [
    'UNSAFE_ENV', 'UnsafeCheckpointError', 'install_safe_loaders',
    'load_checkpoint_file', 'register_safe_globals',
    'set_unsafe_full_unpickle', 'patch_missing_drn',
    'convert_videomae_state_dict', 'describe_videomae_state',
    'find_videomae_state', 'is_original_videomae'
]
