"""Pictures of what STA keeps (imported on demand: it needs matplotlib)."""
from .kept_tokens import (animate_kept_tokens, draw_kept_tokens, kept_masks,
                          load_view, visualize_video)

__all__ = [
    'animate_kept_tokens', 'draw_kept_tokens', 'kept_masks', 'load_view',
    'visualize_video'
]
