"""RLT, Run-Length Tokenization: drop the patches that did not change.

After Choudhury et al., "Don't Look Twice: Faster Video Transformers with
Run-Length Tokenization" (NeurIPS 2024; ``rccchoudhury/rlt``): a token's
change is the mean absolute difference of the normalised pixels of its patch
between the last frame of its tubelet and the first frame of the tubelet
before it; the first tubelet has no predecessor and is always kept. The
native rule keeps the tokens whose change exceeds a threshold
(:func:`rlt_keep`), so each clip keeps its own number; :func:`rlt_select`
drops a fixed number per clip, the smallest changes first.
"""
from typing import Tuple

import torch
from torch import Tensor


def patch_change(x: Tensor, tubelet_size: int, patch_size: int) -> Tensor:
    """(B, C, T, H, W) clip -> (B, N) change per token, ``inf`` at slice 0.

    Tokens in the time-major order of a tubelet patch embedding,
    ``N = (T / tubelet_size) * (H / patch_size) * (W / patch_size)``;
    computed in float32.
    """
    b, c, t, h, w = x.shape
    ts, p = tubelet_size, patch_size
    slices, gh, gw = t // ts, h // p, w // p
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x[..., :gh * p, :gw * p].float()
        last = x[:, :, 2 * ts - 1:slices * ts:ts]  # (B, C, T0-1, H, W)
        first = x[:, :, 0:(slices - 1) * ts:ts]  # (B, C, T0-1, H, W)
        diff = (last - first).abs().view(b, c, slices - 1, gh, p, gw, p)
        diff = diff.mean(dim=(1, 4, 6))  # (B, T0-1, h, w)
        head = diff.new_full((b, 1, gh, gw), float('inf'))
        return torch.cat([head, diff], 1).flatten(1)  # (B, N)


def rlt_keep(change: Tensor, threshold: float) -> Tensor:
    """(B, N) change -> (B, N) bool: kept where the change exceeds it."""
    return change > threshold


def rlt_select(change: Tensor, num_drop: int) -> Tensor:
    """(B, N) change -> (B, N - num_drop) kept indices, in position order.

    Each clip drops its ``num_drop`` tokens of smallest change (ties: the
    earlier position first); those of the first tubelet (``inf``) never.
    """
    order = torch.argsort(change, dim=-1, stable=True)  # (B, N) ascending
    return order[:, num_drop:].sort(dim=-1).values  # (B, N - num_drop)


def pack_kept(keep: Tensor) -> Tuple[Tensor, Tensor]:
    """(B, N) bool -> indices (B, M) and valid (B, M), ``M`` the most kept.

    Each row holds its kept positions in order, then padding: the indices
    of dropped tokens, ``valid`` False.
    """
    count = keep.sum(1)  # (B, )
    order = torch.argsort((~keep).to(torch.uint8), dim=-1, stable=True)
    width = int(count.max())
    valid = torch.arange(width, device=keep.device) < count[:, None]
    return order[:, :width], valid  # (B, M), (B, M)
