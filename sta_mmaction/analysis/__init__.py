"""FLOPs and token accounting; the speed tool's logic (:mod:`.speed`)."""
from .flops import (EXTRA_HANDLES, analytic_swin_flops, analytic_vit_flops,
                    backbone_report, count_flops, sdpa_flop_jit, view_shape,
                    view_token_counts)
from .sweep import build_backbone, drop_numbers_of, flops_sweep, stock_copy

__all__ = [
    'EXTRA_HANDLES', 'analytic_swin_flops', 'analytic_vit_flops',
    'backbone_report', 'build_backbone', 'count_flops', 'drop_numbers_of',
    'flops_sweep', 'sdpa_flop_jit', 'stock_copy', 'view_shape',
    'view_token_counts'
]
