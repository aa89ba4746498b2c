"""FLOPs and token accounting for the tools and hooks."""
from .flops import (EXTRA_HANDLES, analytic_vit_flops, backbone_report,
                    count_flops, sdpa_flop_jit, view_shape)

__all__ = [
    'EXTRA_HANDLES', 'analytic_vit_flops', 'backbone_report', 'count_flops',
    'sdpa_flop_jit', 'view_shape'
]
