"""The baselines and ablations of STA, and the table that picks one.

All share STA's prune points and drop ``r`` per group, hence its token
counts: ``'random'`` (:func:`random_select`), ``'temporal'`` (STA with
``a = 0``), ``'semantic'`` (``a`` alone, no parity rule: every group drops
its ``r`` least active tokens), ``'tome'`` (ToMe's bipartite soft matching
per group, merging instead of dropping; Bolya et al., "Token Merging: Your
ViT But Faster", ICLR 2023), ``'vidtldr'`` (the same matching on the
tokens, each merged token weighted by its saliency, :func:`saliency`;
Choi et al., "vid-TLDR: Training Free Token merging for Light-weight Video
Transformer", CVPR 2024), ``'rlt'`` (each clip drops its ``G * r`` tokens
whose patches changed least, :mod:`.rlt`) and ``'oracle'`` (each group keeps
its first ``n - r`` positions: a speed reference for the cost of STA's
selection, not an accuracy baseline). Only :data:`NEEDS_KEYS` read the
attention keys.
"""
import hashlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from . import sta
from .rlt import rlt_select
from .sta import best_partner, check_groups, gather_tokens

#: Elements of a clip that :func:`clip_generators` hashes, at most.
HASHED_ELEMENTS = 4096

#: One generator for the batch, one per sample, None (the global RNG), or
#: the (B, G, n) draws themselves (an exported graph's input).
Generators = Union[None, torch.Generator, Sequence[torch.Generator], Tensor]


def random_select(batch: int, num_tokens: int, num_groups: int, r: int,
                  generator: Generators = None,
                  device: Optional[torch.device] = None) -> Tensor:
    """(B, N - G * r) indices of a uniformly random keep set per group.

    Args:
        batch (int): B.
        num_tokens (int): N, a multiple of ``num_groups``.
        num_groups (int): G.
        r (int): Tokens dropped per group.
        generator (torch.Generator or Sequence[torch.Generator] or Tensor,
            optional): One for the batch, or one per sample (whose keep sets
            then do not depend on the batch), drawn on its device, or the
            (B, G, n) uniform draws themselves. Defaults to None, the global
            RNG of ``device``.
        device (torch.device, optional): Device of the returned indices.
            Defaults to None, the generator's device (or the CPU).

    Returns:
        Tensor: (B, N - G * r) int64 indices into ``N``, groups in time order
        and each group's survivors in position order.
    """
    n = num_tokens // num_groups
    if isinstance(generator, Tensor):
        noise = generator  # (B, G, n)
    elif isinstance(generator, torch.Generator) or generator is None:
        draw_on = generator.device if generator is not None else device
        noise = torch.rand(batch, num_groups, n, generator=generator,
                           device=draw_on)  # (B, G, n)
    else:
        generator = list(generator)
        if len(generator) != batch:
            raise ValueError(f'random_select got {len(generator)} '
                             f'generators for a batch of {batch}; pass one '
                             'per sample or a single one.')
        noise = torch.stack([
            torch.rand(num_groups, n, generator=g, device=g.device)
            for g in generator
        ])  # (B, G, n)
    local = noise.argsort(dim=-1)[..., :n - r].sort(dim=-1).values
    if device is not None:
        local = local.to(device)
    return _to_global(local, n)  # (B, N - G * r)


def first_select(batch: int, num_tokens: int, num_groups: int, r: int,
                 device: Optional[torch.device] = None) -> Tensor:
    """(B, N - G * r) indices: each group keeps its first ``n - r`` tokens.

    Args:
        batch (int): B.
        num_tokens (int): N, a multiple of ``num_groups``.
        num_groups (int): G.
        r (int): Tokens dropped per group, ``0 < r < n``.
        device (torch.device, optional): Device of the returned indices.
            Defaults to None, the CPU.
    """
    n = num_tokens // num_groups
    local = torch.arange(n - r, device=device)  # (n - r, )
    local = local.expand(batch, num_groups, -1)  # (B, G, n - r)
    return _to_global(local, n)  # (B, N - G * r)


def clip_generators(x: Tensor, seed: int) -> List[torch.Generator]:
    """One CPU generator per clip of ``x``, from ``seed`` and the clip.

    Each is seeded by a hash of ``seed`` and a strided float32 subsample
    (at most :data:`HASHED_ELEMENTS`, copied to the host) of its clip, so its
    draws, in order at each prune point, do not depend on the batch.

    Args:
        x (Tensor): (B, ...) the clips, as the backbone receives them.
        seed (int): The ``'random'`` strategy's seed.
    """
    flat = x.detach().reshape(x.shape[0], -1)  # (B, L)
    stride = max(1, flat.shape[1] // HASHED_ELEMENTS)
    sample = flat[:, ::stride].float().cpu().contiguous()  # (B, ceil(L/s))
    gens = []
    for row in sample:
        digest = hashlib.blake2b(
            f'{seed}:'.encode() + row.numpy().tobytes(), digest_size=8)
        gens.append(torch.Generator().manual_seed(
            int.from_bytes(digest.digest(), 'little') >> 1))
    return gens


def semantic_select(x: Tensor, num_groups: int, r: int) -> Tensor:
    """(B, N, C) -> (B, N - G * r): each group keeps its most active tokens.

    Survivors are ordered by ascending score ``1 - a``, as STA's later groups.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        score = 1 - sta.semantic_activation(x, num_groups)  # (B, G, n)
    n = score.shape[-1]
    local = torch.argsort(score, dim=-1, stable=True)[..., :n - r]
    return _to_global(local, n)  # (B, N - G * r)


def _to_global(local: Tensor, n: int) -> Tensor:
    """(B, G, m) indices local to groups of ``n`` -> (B, G * m) global."""
    offset = torch.arange(local.shape[1], device=local.device) * n  # (G, )
    return (local + offset[:, None]).flatten(1)


def _sta(x, keys, num_groups, r, reverse, generator, change):
    return sta.sta_select(x, keys, num_groups, r, reverse)


def _temporal(x, keys, num_groups, r, reverse, generator, change):
    return sta.sta_select(x, keys, num_groups, r, reverse, semantic=False)


def _random(x, keys, num_groups, r, reverse, generator, change):
    return random_select(x.shape[0], x.shape[1], num_groups, r, generator,
                         x.device)


def _semantic(x, keys, num_groups, r, reverse, generator, change):
    return semantic_select(x, num_groups, r)


def _oracle(x, keys, num_groups, r, reverse, generator, change):
    return first_select(x.shape[0], x.shape[1], num_groups, r, x.device)


def _rlt(x, keys, num_groups, r, reverse, generator, change):
    return rlt_select(change, num_groups * r)


#: Selecting strategy ->
#: ``f(x, keys, num_groups, r, reverse, generator, change)``.
SELECTORS: Dict[str, Callable[..., Tensor]] = {
    'sta': _sta, 'random': _random, 'temporal': _temporal,
    'semantic': _semantic, 'oracle': _oracle, 'rlt': _rlt,
}

#: Strategies that merge tokens (:func:`bipartite_match`) instead of
#: selecting them.
MERGING = ('tome', 'vidtldr')

#: Every token-reduction strategy, STA first: the one list that tools and
#: experiments iterate over. ``'oracle'`` is a speed reference only.
STRATEGIES = tuple(SELECTORS) + MERGING

#: Strategies that read the attention keys (the others get ``keys=None``).
NEEDS_KEYS = frozenset({'sta', 'temporal', 'tome'})


def validate_strategy(strategy: str) -> None:
    """Raise a ``ValueError`` unless ``strategy`` is in :data:`STRATEGIES`."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f'strategy={strategy!r} is not a token-reduction '
                         f'strategy; choose one of {STRATEGIES}.')


def select_tokens(x: Tensor, keys: Optional[Tensor], num_groups: int, r: int,
                  reverse: bool = False, *, strategy: str = 'sta',
                  generator: Generators = None,
                  change: Optional[Tensor] = None) -> Tensor:
    """:data:`SELECTORS` ``[strategy]``: (B, N - G * r) kept indices.

    Args:
        x (Tensor): (B, N, C) block output tokens, time-major.
        keys (Tensor, optional): (B, N, c) the block's head-averaged
            attention keys; None for a strategy outside :data:`NEEDS_KEYS`.
        num_groups (int): G, the number of equal consecutive groups.
        r (int): Tokens dropped per group.
        reverse (bool): Visit the groups in reverse time order (STA and
            ``'temporal'``). Defaults to False.
        strategy (str): A key of :data:`SELECTORS` (``'tome'`` merges: use
            :func:`bipartite_match`). Defaults to ``'sta'``.
        generator (torch.Generator or Sequence[torch.Generator], optional):
            The ``'random'`` strategy's draws (see :func:`random_select`).
            Defaults to None, the global RNG of ``x``'s device.
        change (Tensor, optional): (B, N) the ``'rlt'`` strategy's change
            per token (:func:`~sta_mmaction.core.rlt.patch_change`).
            Defaults to None.

    Returns:
        Tensor: (B, N - G * r) int64 indices into ``N``, groups in time
        order. ``'random'``, ``'oracle'`` and ``'rlt'`` keep survivors in
        position order; ``'rlt'`` drops ``G * r`` per clip, not per group.
    """
    validate_strategy(strategy)
    if strategy in MERGING:
        raise ValueError(f'strategy={strategy!r} merges tokens instead of '
                         'selecting them; use bipartite_match() and '
                         'merge_tokens().')
    if keys is None and strategy in NEEDS_KEYS:
        raise ValueError(f'strategy={strategy!r} scores the attention keys, '
                         'but keys=None.')
    if change is None and strategy == 'rlt':
        raise ValueError("strategy='rlt' ranks the tokens by their change, "
                         'but change=None.')
    check_groups(x.shape[1], num_groups, r)
    if r <= 0:
        return torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
    return SELECTORS[strategy](x, keys, num_groups, r, reverse, generator,
                               change)


def bipartite_match(keys: Tensor, num_groups: int,
                    r: int) -> Tuple[Tensor, Tensor, Tensor]:
    """ToMe's bipartite soft matching inside each of ``G`` groups.

    After ToMe (Bolya et al., ICLR 2023; ``tome/merge.py``): a group's even
    positions (A) are linked to their most similar odd position (B, key
    cosine), and the ``r`` A tokens with the most similar links merge into
    their B partners, so every group loses ``r`` tokens as in STA.

    Args:
        keys (Tensor): (B, N, c) head-averaged attention keys; they are
            L2-normalised here.
        num_groups (int): G, the number of equal consecutive groups.
        r (int): Tokens merged away per group, at most half a group.

    Returns:
        tuple[Tensor]: int64 indices into ``N``: ``kept`` (B, N - G * r) in
        time then position order; ``src`` (B, G * r), merged away; ``dst``
        (B, G * r), the kept token each ``src`` token merges into.
    """
    b, n_tok, _ = keys.shape
    n = check_groups(n_tok, num_groups, r)
    if r <= 0:
        empty = keys.new_zeros(b, 0, dtype=torch.long)
        return (torch.arange(n_tok, device=keys.device).expand(b, -1), empty,
                empty)
    with torch.autocast(device_type=keys.device.type, enabled=False):
        unit = F.normalize(keys.float(), dim=-1)  # (B, N, c)
        unit = unit.view(b, num_groups, n, -1)  # (B, G, n, c)
        best, partner = best_partner(unit)  # (B, G, nA)
    order = torch.argsort(best, dim=-1, descending=True, stable=True)
    src_a = order[..., :r]  # (B, G, r), A tokens merged away
    kept_a = order[..., r:]  # (B, G, nA - r)
    dst_b = partner.gather(-1, src_a)  # (B, G, r)
    odd = torch.arange(1, n, 2, device=keys.device)  # (nB, )
    odd = odd.expand(b, num_groups, -1)  # (B, G, nB)
    kept = torch.cat([odd, kept_a * 2], dim=-1).sort(dim=-1).values
    return (_to_global(kept, n), _to_global(src_a * 2, n),
            _to_global(dst_b * 2 + 1, n))


def merge_tokens(x: Tensor, size: Tensor, kept: Tensor, src: Tensor,
                 dst: Tensor,
                 weight: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Size-weighted merge of ``src`` tokens into ``dst`` tokens.

    A kept token becomes the size-weighted mean of itself and the tokens
    merged into it, its size their sum (as ToMe's ``merge_wavg``). With
    ``weight`` each ``src`` token's size is scaled by its weight first, as
    vid-TLDR's saliency-aware merge does (weight 0 drops it).

    Args:
        x (Tensor): (B, N, C) tokens.
        size (Tensor): (B, N) original patches per token; ones at first.
        kept (Tensor): (B, M) indices of the surviving tokens.
        src (Tensor): (B, K) indices of the tokens merged away.
        dst (Tensor): (B, K) the kept token each ``src`` merges into.
        weight (Tensor, optional): (B, N) weight of each token as a
            ``src``. Defaults to None, all ones.

    Returns:
        tuple[Tensor]: merged tokens (B, M, C) in ``x``'s dtype and their
        float32 sizes (B, M).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        size = size.float()
        xf = x.float()  # (B, N, C)
        total = xf * size.unsqueeze(-1)  # (B, N, C)
        moved = size.gather(1, src)  # (B, K)
        if weight is not None:
            moved = moved * weight.float().gather(1, src)  # (B, K)
        to_dst = dst.unsqueeze(-1).expand(-1, -1, x.shape[-1])  # (B, K, C)
        total = total.scatter_add(
            1, to_dst, gather_tokens(xf, src) *
            moved.unsqueeze(-1))  # (B, N, C)
        size = size.scatter_add(1, dst, moved)  # (B, N)
        size = size.gather(1, kept)  # (B, M)
        merged = gather_tokens(total, kept) / size.unsqueeze(-1)  # (B, M, C)
    return merged.to(x.dtype), size


def saliency(attn: Tensor) -> Tensor:
    """(B, N, N) head-averaged attention probabilities -> (B, N) saliency.

    vid-TLDR's score (Choi et al., CVPR 2024; ``mlvlab/vid-TLDR``): each
    token's negative attention entropy ``sum_j p_ij log p_ij``, min-max
    normalised over the clip; tokens below the mean are background and get
    0, the rest ``(s - mean) / max(s - mean)`` in ``(0, 1]``. A clip of equal
    scores gets 0 everywhere instead of ``0 / 0``.
    """
    with torch.autocast(device_type=attn.device.type, enabled=False):
        s = torch.xlogy(attn.float(), attn.float()).sum(-1)  # (B, N)
        s = s - s.amin(-1, keepdim=True)
        s = _safe_div(s, s.amax(-1, keepdim=True))  # (B, N) in [0, 1]
        mean = s.mean(-1, keepdim=True)  # (B, 1)
        s = _safe_div(s - mean, (s - mean).amax(-1, keepdim=True))
        return torch.where(s < 0, torch.zeros_like(s), s)  # (B, N)


def _safe_div(a: Tensor, b: Tensor) -> Tensor:
    """``a / b``, and 0 where ``b`` is 0."""
    ok = b > 0
    return torch.where(ok, a / torch.where(ok, b, torch.ones_like(b)),
                       torch.zeros_like(a))
