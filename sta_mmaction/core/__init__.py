"""The STA rule in plain PyTorch (no mmengine import)."""
from .sta import (accumulate, check_drop_number, gather_tokens, group_schedule,
                  group_sizes, max_drop_number, parity_drop, prune_layers,
                  semantic_activation, sta_select, token_counts,
                  validate_drop_number)

__all__ = [
    'accumulate', 'check_drop_number', 'gather_tokens', 'group_schedule',
    'group_sizes', 'max_drop_number', 'parity_drop', 'prune_layers',
    'semantic_activation', 'sta_select', 'token_counts',
    'validate_drop_number'
]
