"""STA, Semantic-aware Temporal Accumulation: the token-selection rule.

As in the paper's released code (Ding et al., "Prune Spatio-temporal Tokens
by Semantic-aware Temporal Accumulation", ICCV 2023): the time-major tokens
are cut into ``G`` equal groups, each losing ``r``. The first visited group
drops the ``r`` even positions most similar (key cosine) to an odd one,
after ToMe's bipartite matching (Bolya et al., ICLR 2023). Every later group
accumulates redundancy from the group visited before it (a softmax of the
key cosines, weighted by the source tokens' redundancy) and drops the ``r``
highest ``acc * (1 - a)``, ``a`` the min-max normalised channel-sum of |x|.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def semantic_activation(x: Tensor, num_groups: int) -> Tensor:
    """(B, N, C) -> (B, G, n): channel-sum of ``|x|``, min-max per group.

    A group of equal activations (a constant clip) gets ``0`` everywhere
    instead of the ``0 / 0`` of a plain min-max.
    """
    b, n_tok, _ = x.shape
    a = x.abs().sum(-1, dtype=torch.float32)  # (B, N)
    a = a.view(b, num_groups, n_tok // num_groups)  # (B, G, n)
    a_min = a.amin(-1, keepdim=True)  # (B, G, 1)
    a_rng = a.amax(-1, keepdim=True) - a_min  # (B, G, 1)
    safe = torch.where(a_rng > 0, a_rng, torch.ones_like(a_rng))
    return torch.where(a_rng > 0, (a - a_min) / safe, torch.zeros_like(a))


def best_partner(unit: Tensor) -> Tuple[Tensor, Tensor]:
    """(..., n, c) unit keys -> each even position's best odd match.

    Returns the (..., nA) highest cosine to any odd token and the (..., nA)
    index of that token among the odd ones.
    """
    a_keys, b_keys = unit[..., 0::2, :], unit[..., 1::2, :]
    return (a_keys @ b_keys.transpose(-1, -2)).max(dim=-1)  # (..., nA)


def parity_drop(keys: Tensor, r: int) -> Tensor:
    """(B, n, c) unit keys -> kept local indices (B, n - r).

    Drops the ``r`` even positions of highest :func:`best_partner` cosine.
    Kept order: every odd token in order, then the remaining even tokens by
    ascending score, ties by position (stable sort).
    """
    b, n, _ = keys.shape
    best, _ = best_partner(keys)  # (B, nA)
    order = torch.argsort(best, dim=-1, stable=True)  # ascending
    kept_a = order[:, :best.shape[1] - r] * 2  # (B, nA - r), even positions
    odd = torch.arange(1, n, 2, device=keys.device).expand(b, -1)  # (B, nB)
    return torch.cat([odd, kept_a], dim=1)


def accumulate(src_keys: Tensor, src_weight: Tensor, keys: Tensor) -> Tensor:
    """(B, n) redundancy ``w @ softmax(cos(src, group), over the group)``.

    Args:
        src_keys (Tensor): (B, m, c) unit keys of the source tokens.
        src_weight (Tensor): (B, m) weight of each source token.
        keys (Tensor): (B, n, c) unit keys of the group.
    """
    prob = (src_keys @ keys.transpose(1, 2)).softmax(dim=-1)  # (B, m, n)
    return (src_weight.unsqueeze(1) @ prob).squeeze(1)  # (B, n)


def check_groups(n_tok: int, num_groups: int, r: int) -> int:
    """Tokens per group; ``ValueError`` unless ``r`` fits in half a group."""
    if n_tok % num_groups:
        raise ValueError(f'{n_tok} tokens cannot be cut into num_groups='
                         f'{num_groups} equal groups.')
    n = n_tok // num_groups
    if r > n // 2:
        raise ValueError(f'drop_number={r} exceeds half of a group of {n} '
                         f'tokens; at most {n // 2} is allowed here.')
    return n


def sta_select(x: Tensor, keys: Tensor, num_groups: int, r: int,
               reverse: bool = False, *, semantic: bool = True) -> Tensor:
    """(B, N, C), (B, N, c) -> (B, N - G * r) indices of the kept tokens.

    Args:
        x (Tensor): (B, N, C) block output tokens, time-major.
        keys (Tensor): (B, N, c) the block's head-averaged attention keys;
            they are L2-normalised here.
        num_groups (int): G, the number of equal consecutive groups.
        r (int): Tokens dropped per group.
        reverse (bool): Visit the groups in reverse time order (see
            :func:`~sta_mmaction.core.schedule.visits_in_reverse`).
            Defaults to False.
        semantic (bool): Weigh the redundancy by ``1 - a``; False is the
            ``'temporal'`` ablation (``a = 0``). Defaults to True.

    Returns:
        Tensor: (B, N - G * r) int64 indices into ``N``, groups in time
        order, each in the rule's order (which the next prune point uses).
    """
    b, n_tok, _ = x.shape
    n = check_groups(n_tok, num_groups, r)
    if r <= 0:
        return torch.arange(n_tok, device=x.device).expand(b, -1)
    # Scores are compared across tokens, so they are kept in float32 even
    # when the backbone runs under fp16/bf16 autocast.
    with torch.autocast(device_type=x.device.type, enabled=False):
        unit = F.normalize(keys.float(), dim=-1)  # (B, N, c)
        unit = unit.view(b, num_groups, n, -1)  # (B, G, n, c)
        if semantic:
            sem = semantic_activation(x, num_groups)  # (B, G, n)
        else:
            sem = x.new_zeros(b, num_groups, n, dtype=torch.float32)
        order = range(num_groups - 1, -1, -1) if reverse else range(
            num_groups)
        kept: List[Tensor] = [None] * num_groups  # type: ignore
        src_keys = src_w = None
        for step, g in enumerate(order):
            k_g = unit[:, g]  # (B, n, c)
            if step == 0:
                local = parity_drop(k_g, r)  # (B, n - r)
                src_keys = k_g
                src_w = k_g.new_ones(b, n)
            else:
                acc = accumulate(src_keys, src_w, k_g)  # (B, n)
                score = acc * (1 - sem[:, g])  # (B, n)
                local = torch.argsort(score, dim=-1, stable=True)[:, :n - r]
                src_keys = gather_tokens(k_g, local)  # (B, n - r, c)
                src_w = acc.gather(1, local)  # (B, n - r)
                src_w = src_w / src_w.sum(-1, keepdim=True)
            kept[g] = local + g * n
    return torch.cat(kept, dim=1)


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """(B, N, C), (B, M) -> (B, M, C)."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def scatter_tokens(x: Tensor, idx: Tensor, src: Tensor) -> Tensor:
    """(B, N, C), (B, M), (B, M, C) -> ``x`` with ``src`` put at ``idx``.

    In place, like ``Tensor.scatter_``.
    """
    return x.scatter_(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]), src)
