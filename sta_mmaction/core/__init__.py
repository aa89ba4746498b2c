"""The STA rule and its baselines in plain PyTorch (no mmengine import)."""
from .sta import (HASHED_ELEMENTS, STRATEGIES, accumulate, bipartite_match,
                  check_drop_number, clip_generators, gather_tokens,
                  group_schedule, group_sizes, max_drop_number, merge_tokens,
                  parity_drop, prune_layers, random_select, scatter_tokens,
                  semantic_activation, sta_select, token_counts,
                  validate_drop_number, validate_strategy)

__all__ = [
    'HASHED_ELEMENTS', 'STRATEGIES', 'accumulate', 'bipartite_match',
    'check_drop_number', 'clip_generators', 'gather_tokens',
    'group_schedule', 'group_sizes', 'max_drop_number', 'merge_tokens',
    'parity_drop', 'prune_layers', 'random_select', 'scatter_tokens',
    'semantic_activation', 'sta_select', 'token_counts',
    'validate_drop_number', 'validate_strategy'
]
