"""The STA rule (:mod:`.sta`), its baselines (:mod:`.baselines`, RLT's
change in :mod:`.rlt`) and its schedules (:mod:`.schedule`) in plain
PyTorch, without mmengine."""
from .baselines import (HASHED_ELEMENTS, MERGING, NEEDS_KEYS, SELECTORS,
                        STRATEGIES, Generators, bipartite_match,
                        clip_generators, first_select, merge_tokens,
                        random_select, saliency, select_tokens,
                        semantic_select, validate_strategy)
from .rlt import pack_kept, patch_change, rlt_keep, rlt_select
from .schedule import (NUM_PRUNE_POINTS, ceil_div, check_drop_number,
                       group_schedule, group_sizes, kept_cells,
                       max_drop_number, max_swin_drop, prune_layers,
                       swin_grids, swin_plan, swin_schedule, token_counts,
                       validate_drop_number, visits_in_reverse)
from .sta import (accumulate, gather_tokens, parity_drop, scatter_tokens,
                  semantic_activation, sta_select)

__all__ = [
    'HASHED_ELEMENTS', 'MERGING', 'NEEDS_KEYS', 'NUM_PRUNE_POINTS',
    'SELECTORS', 'STRATEGIES', 'Generators', 'accumulate', 'bipartite_match',
    'ceil_div', 'check_drop_number', 'clip_generators', 'first_select',
    'gather_tokens', 'group_schedule', 'group_sizes', 'kept_cells',
    'max_drop_number', 'max_swin_drop', 'merge_tokens', 'pack_kept',
    'parity_drop', 'patch_change', 'prune_layers', 'random_select',
    'rlt_keep', 'rlt_select', 'saliency', 'scatter_tokens', 'select_tokens',
    'semantic_activation', 'semantic_select', 'sta_select', 'swin_grids',
    'swin_plan', 'swin_schedule', 'token_counts', 'validate_drop_number',
    'validate_strategy', 'visits_in_reverse'
]
