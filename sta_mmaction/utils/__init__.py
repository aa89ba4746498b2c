"""Install-time fixes for the pinned OpenMMLab stack, and checkpoint I/O."""
from .checkpoint import (UNSAFE_ENV, CheckpointError, UnsafeCheckpointError,
                         cached_path, file_sha256, install_safe_loaders,
                         load_checkpoint_file, local_checkpoint_file,
                         register_safe_globals, set_unsafe_full_unpickle,
                         validate_checkpoint)
from .checkpoint_io import (check_state_dict, load_recognizer_weights,
                            prepare_checkpoint, save_converted,
                            save_mmengine_checkpoint, strip_module_prefix)
from .mmaction_compat import (check_stack, patch_missing_drn,
                              skip_broken_multimodal)
from .swin_convert import (check_swin_windows, convert_swin_state_dict,
                           describe_swin_state, find_swin_state,
                           is_original_swin, map_swin_key)
from .videomae_convert import (convert_videomae_state_dict,
                               describe_videomae_state, find_videomae_state,
                               is_original_videomae)

__all__ = [
    'UNSAFE_ENV', 'CheckpointError', 'UnsafeCheckpointError', 'cached_path',
    'file_sha256', 'install_safe_loaders', 'load_checkpoint_file',
    'local_checkpoint_file', 'register_safe_globals',
    'set_unsafe_full_unpickle', 'validate_checkpoint', 'check_state_dict',
    'load_recognizer_weights', 'prepare_checkpoint', 'save_converted',
    'save_mmengine_checkpoint', 'strip_module_prefix', 'check_stack',
    'patch_missing_drn',
    'skip_broken_multimodal',
    'convert_videomae_state_dict', 'describe_videomae_state',
    'find_videomae_state', 'is_original_videomae', 'check_swin_windows',
    'convert_swin_state_dict', 'describe_swin_state', 'find_swin_state',
    'is_original_swin', 'map_swin_key'
]
