"""STA, Semantic-aware Temporal Accumulation: the token-selection rule.

Plain PyTorch on ``(B, N, C)`` tensors, importable without mmengine. The
functions return indices; the backbones gather with them. The rule is the one
of the paper's released code (Ding et al., "Prune Spatio-temporal Tokens by
Semantic-aware Temporal Accumulation", ICCV 2023), restated here:

* The token sequence (time-major) is cut into ``G`` equal consecutive groups.
  Every group loses exactly ``r`` tokens.
* The first visited group drops, among its even positions, the ``r`` tokens
  most similar (key cosine) to any odd position, in the spirit of ToMe's
  bipartite matching (Bolya et al., ICLR 2023).
* Every later group accumulates redundancy from the group visited before it:
  a softmax over the new group's tokens of the key cosines, weighted by the
  source tokens' own accumulated redundancy. The score ``acc * (1 - a)``, with
  ``a`` the min-max normalised channel-sum of ``|x|``, drops the tokens that
  are both redundant and semantically weak.

The baselines and ablations share the prune points and the per-group drop
count ``r``, so every one of them leaves the same token counts
(:data:`STRATEGIES`):

* ``'random'``: a uniformly random keep set per group
  (:func:`random_select`), seedable with a ``torch.Generator`` per sample
  (:func:`clip_generators` derives one from a seed and the clip itself).
* ``'temporal'``: STA without the semantic factor (``a = 0``): the parity
  drop, then accumulated redundancy alone.
* ``'semantic'``: the semantic factor alone (accumulated redundancy ``= 1``).
  With no redundancy there is no parity rule either, so every group, the
  first visited one included, drops its ``r`` tokens of lowest activation
  (score ``1 - a``).
* ``'tome'``: ToMe's bipartite soft matching inside each group, merging
  instead of dropping (:func:`bipartite_match`, :func:`merge_tokens`, after
  Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023).
"""
import hashlib
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

#: Number of prune points of the schedule.
NUM_PRUNE_POINTS = 3

#: Elements of a clip that :func:`clip_generators` hashes, at most.
HASHED_ELEMENTS = 4096

#: Token-reduction strategies, STA first. All but ``'tome'`` select tokens
#: (:func:`sta_select`); ``'tome'`` merges them (:func:`bipartite_match`).
STRATEGIES = ('sta', 'random', 'temporal', 'semantic', 'tome')


#: One generator for the batch, one per sample, or None (the global RNG).
Generators = Union[None, torch.Generator, Sequence[torch.Generator]]


def validate_strategy(strategy: str) -> None:
    """Raise a ``ValueError`` unless ``strategy`` is in :data:`STRATEGIES`."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f'strategy={strategy!r} is not a token-reduction '
                         f'strategy; choose one of {STRATEGIES}.')


def prune_layers(depth: int) -> Tuple[int, int, int]:
    """0-based indices of the blocks after which tokens are pruned."""
    if depth < NUM_PRUNE_POINTS:
        raise ValueError(f'depth={depth} is too shallow for STA: it prunes '
                         f'after {NUM_PRUNE_POINTS} distinct blocks, so '
                         f'depth must be >= {NUM_PRUNE_POINTS}.')
    return 0, depth // 3, 2 * depth // 3


def group_schedule(num_slices: int) -> Tuple[int, int, int]:
    """Number of groups at each prune point for ``num_slices`` slices.

    Args:
        num_slices (int): Temporal token slices, ``num_frames //
            tubelet_size`` (``T0``).

    Returns:
        tuple[int]: ``(T0, T0 // 2, T0 // 4)``.
    """
    if num_slices < 4 or num_slices % 4 != 0:
        raise ValueError(
            f'num_frames / tubelet_size = {num_slices} temporal slices '
            'cannot be split by the STA schedule, which groups 1, 2 and 4 '
            'slices at its three prune points: the number of slices must be '
            'a positive multiple of 4 (e.g. num_frames=16, tubelet_size=2).')
    return num_slices, num_slices // 2, num_slices // 4


def group_sizes(tokens_per_slice: int, num_slices: int,
                drop_number: int) -> List[int]:
    """Tokens per group seen at each prune point (before dropping)."""
    groups = group_schedule(num_slices)
    sizes = []
    total = tokens_per_slice * num_slices
    for g in groups:
        sizes.append(total // g)
        total -= g * drop_number
    return sizes


def token_counts(tokens_per_slice: int, num_slices: int,
                 drop_number: int) -> List[int]:
    """Token count of the sequence before the first and after each point.

    For 16x224x224 (196 tokens per slice, 8 slices):
    ``[1568, 1568 - 8r, 1568 - 12r, 1568 - 14r]``.
    """
    counts = [tokens_per_slice * num_slices]
    for g in group_schedule(num_slices):
        counts.append(counts[-1] - g * drop_number)
    return counts


def max_drop_number(tokens_per_slice: int, num_slices: int) -> int:
    """Largest ``r`` for which every group keeps at least half its tokens."""
    r = tokens_per_slice // 2
    while r > 0 and not _fits(tokens_per_slice, num_slices, r):
        r -= 1
    return r


def _fits(tokens_per_slice: int, num_slices: int, drop_number: int) -> bool:
    return all(drop_number <= n // 2 for n in group_sizes(
        tokens_per_slice, num_slices, drop_number))


def validate_drop_number(drop_number: int) -> None:
    """Raise a ``ValueError`` unless ``drop_number`` is an int >= 0."""
    if isinstance(drop_number, bool) or not isinstance(drop_number, int):
        raise ValueError(f'drop_number must be an int, got {drop_number!r} '
                         f'({type(drop_number).__name__}).')
    if drop_number < 0:
        raise ValueError(f'drop_number={drop_number} is negative; it is the '
                         'number of tokens dropped per group at every prune '
                         'point and must be >= 0 (0 disables pruning).')


def check_drop_number(drop_number: int, tokens_per_slice: int,
                      num_slices: int) -> None:
    """Raise a ``ValueError`` unless ``drop_number`` suits the token grid."""
    validate_drop_number(drop_number)
    group_schedule(num_slices)
    if drop_number and not _fits(tokens_per_slice, num_slices, drop_number):
        sizes = group_sizes(tokens_per_slice, num_slices, drop_number)
        raise ValueError(
            f'drop_number={drop_number} is too large for a grid of '
            f'{num_slices} slices x {tokens_per_slice} tokens: the groups at '
            f'the three prune points would hold {sizes} tokens and STA drops '
            'at most half of a group. The largest allowed drop_number is '
            f'{max_drop_number(tokens_per_slice, num_slices)}.')


def semantic_activation(x: Tensor, num_groups: int) -> Tensor:
    """(B, N, C) -> (B, G, n): channel-sum of ``|x|``, min-max per group.

    A group whose tokens all have the same activation (a constant clip, for
    example) has no semantic contrast; it gets ``0`` everywhere instead of the
    ``0 / 0`` of a plain min-max.
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

    The bipartite split shared by STA's first group and ToMe: even positions
    (set A) against odd positions (set B).

    Returns:
        tuple[Tensor]: (..., nA) the highest cosine of every A token to any B
        token, and (..., nA) the index of that B token among the odd ones.
    """
    a_keys, b_keys = unit[..., 0::2, :], unit[..., 1::2, :]
    return (a_keys @ b_keys.transpose(-1, -2)).max(dim=-1)  # (..., nA)


def parity_drop(keys: Tensor, r: int) -> Tensor:
    """(B, n, c) unit keys -> kept local indices (B, n - r).

    Even positions (set A) are scored by their highest cosine to any odd
    position (set B); the ``r`` A tokens with the highest scores are dropped.
    Kept order: every B token in its order, then the remaining A tokens by
    ascending score. Ties are broken by position (stable sort).
    """
    b, n, _ = keys.shape
    best, _ = best_partner(keys)  # (B, nA)
    order = torch.argsort(best, dim=-1, stable=True)  # ascending
    kept_a = order[:, :best.shape[1] - r] * 2  # (B, nA - r), even positions
    odd = torch.arange(1, n, 2, device=keys.device).expand(b, -1)  # (B, nB)
    return torch.cat([odd, kept_a], dim=1)


def accumulate(src_keys: Tensor, src_weight: Tensor, keys: Tensor) -> Tensor:
    """Accumulated redundancy of a group's tokens with respect to a source.

    Args:
        src_keys (Tensor): (B, m, c) unit keys of the source tokens.
        src_weight (Tensor): (B, m) weight of each source token.
        keys (Tensor): (B, n, c) unit keys of the group.

    Returns:
        Tensor: (B, n), ``w @ softmax(cos(src, group), over the group)``.
    """
    prob = (src_keys @ keys.transpose(1, 2)).softmax(dim=-1)  # (B, m, n)
    return (src_weight.unsqueeze(1) @ prob).squeeze(1)  # (B, n)


def sta_select(x: Tensor,
               keys: Tensor,
               num_groups: int,
               r: int,
               reverse: bool = False,
               *,
               strategy: str = 'sta',
               generator: Generators = None) -> Tensor:
    """(B, N, C), (B, N, c) -> (B, N - G * r) indices of the kept tokens.

    Args:
        x (Tensor): (B, N, C) block output tokens, time-major.
        keys (Tensor): (B, N, c) the block's attention keys, averaged over
            heads. They are L2-normalised here.
        num_groups (int): G, the number of equal consecutive groups.
        r (int): Tokens dropped per group.
        reverse (bool): Visit the groups in reverse time order.
            Defaults to False.
        strategy (str): ``'sta'``, or one of the baselines ``'random'``,
            ``'temporal'`` and ``'semantic'`` (see the module doc).
            ``'tome'`` merges rather than selects: use
            :func:`bipartite_match` and :func:`merge_tokens`.
            Defaults to ``'sta'``.
        generator (torch.Generator or Sequence[torch.Generator], optional):
            Source of the ``'random'`` strategy's draws (see
            :func:`random_select`). Ignored by the other strategies.
            Defaults to None, the global RNG of ``x``'s device.

    Returns:
        Tensor: (B, N - G * r) int64 indices into ``N``. Groups appear in time
        order; inside a group the order is the rule's (see the module doc),
        which the next prune point depends on. ``'random'`` keeps each
        group's survivors in position order; ``'semantic'`` orders them by
        ascending score, as STA's later groups.
    """
    validate_strategy(strategy)
    if strategy == 'tome':
        raise ValueError("strategy='tome' merges tokens instead of selecting "
                         'them; use bipartite_match() and merge_tokens().')
    b, n_tok, _ = x.shape
    if n_tok % num_groups:
        raise ValueError(f'{n_tok} tokens cannot be cut into num_groups='
                         f'{num_groups} equal groups.')
    n = n_tok // num_groups
    if r <= 0:
        return torch.arange(n_tok, device=x.device).expand(b, -1)
    if r > n // 2:
        raise ValueError(f'drop_number={r} exceeds half of a group of {n} '
                         f'tokens; at most {n // 2} is allowed here.')
    if strategy == 'random':
        return random_select(b, n_tok, num_groups, r, generator, x.device)
    # Scores are compared across tokens, so they are kept in float32 even
    # when the backbone runs under fp16/bf16 autocast.
    with torch.autocast(device_type=x.device.type, enabled=False):
        if strategy == 'semantic':
            score = 1 - semantic_activation(x, num_groups)  # (B, G, n)
            local = torch.argsort(score, dim=-1, stable=True)[..., :n - r]
            return _to_global(local, n)  # (B, N - G * r)
        unit = F.normalize(keys.float(), dim=-1)  # (B, N, c)
        unit = unit.view(b, num_groups, n, -1)  # (B, G, n, c)
        if strategy == 'sta':
            sem = semantic_activation(x, num_groups)  # (B, G, n)
        else:  # 'temporal': no semantic factor, a = 0
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


def _to_global(local: Tensor, n: int) -> Tensor:
    """(B, G, m) indices local to groups of ``n`` -> (B, G * m) global."""
    offset = torch.arange(local.shape[1], device=local.device) * n  # (G, )
    return (local + offset[:, None]).flatten(1)


def random_select(batch: int,
                  num_tokens: int,
                  num_groups: int,
                  r: int,
                  generator: Generators = None,
                  device: Optional[torch.device] = None) -> Tensor:
    """(B, N - G * r) indices of a uniformly random keep set per group.

    Every group keeps ``n - r`` of its ``n`` tokens, drawn without
    replacement, independently for every sample and group.

    Args:
        batch (int): B.
        num_tokens (int): N, a multiple of ``num_groups``.
        num_groups (int): G.
        r (int): Tokens dropped per group.
        generator (torch.Generator or Sequence[torch.Generator], optional):
            Source of the draws, which are made on its device: one
            generator for the whole batch, or ``batch`` generators, one per
            sample, so that a sample's keep sets depend on its own generator
            only, whatever the batch around it. The same generator states
            give the same keep sets. Defaults to None, the global RNG of
            ``device``.
        device (torch.device, optional): Device of the returned indices.
            Defaults to None, the generator's device (or the CPU).

    Returns:
        Tensor: (B, N - G * r) int64 indices into ``N``, groups in time order
        and each group's survivors in position order.
    """
    n = num_tokens // num_groups
    if isinstance(generator, torch.Generator) or generator is None:
        draw_on = generator.device if generator is not None else device
        noise = torch.rand(
            batch, num_groups, n, generator=generator,
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


def clip_generators(x: Tensor, seed: int) -> List[torch.Generator]:
    """One CPU generator per clip of ``x``, from ``seed`` and the clip.

    A sample's generator is seeded by a hash of ``seed`` and of a strided
    subsample (at most :data:`HASHED_ELEMENTS` values, as float32) of its
    own clip, so its draws do not depend on the batch size, on its place
    in the batch or on the process that runs it; a deterministic test
    pipeline gives every view the same keep sets in every run. The
    subsample is copied to the host, one small copy per forward.

    Args:
        x (Tensor): (B, ...) the clips, as the backbone receives them.
        seed (int): The ``'random'`` strategy's seed.

    Returns:
        list[torch.Generator]: B generators, to be drawn from in order at
        each prune point.
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


def bipartite_match(keys: Tensor, num_groups: int,
                    r: int) -> Tuple[Tensor, Tensor, Tensor]:
    """ToMe's bipartite soft matching inside each of ``G`` groups.

    The idea is ToMe's (Bolya et al., ICLR 2023; ``tome/merge.py``): split a
    group into alternating sets A (even positions) and B (odd positions),
    link every A token to its most similar B token (key cosine), and merge
    the ``r`` A tokens with the most similar links into their B partners.
    Here it runs in every group of the STA schedule, so it removes the same
    ``r`` tokens per group as the other strategies.

    Args:
        keys (Tensor): (B, N, c) attention keys averaged over heads; they
            are L2-normalised here.
        num_groups (int): G, the number of equal consecutive groups.
        r (int): Tokens merged away per group, at most half a group.

    Returns:
        tuple[Tensor]: int64 indices into ``N``: ``kept`` (B, N - G * r), the
        surviving tokens (groups in time order, each group's survivors in
        position order); ``src`` (B, G * r), the tokens merged away; and
        ``dst`` (B, G * r), the kept token each ``src`` token merges into.
    """
    b, n_tok, _ = keys.shape
    if n_tok % num_groups:
        raise ValueError(f'{n_tok} tokens cannot be cut into num_groups='
                         f'{num_groups} equal groups.')
    n = n_tok // num_groups
    if r <= 0:
        empty = keys.new_zeros(b, 0, dtype=torch.long)
        return (torch.arange(n_tok, device=keys.device).expand(b, -1), empty,
                empty)
    if r > n // 2:
        raise ValueError(f'drop_number={r} exceeds half of a group of {n} '
                         f'tokens; at most {n // 2} is allowed here.')
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
                 dst: Tensor) -> Tuple[Tensor, Tensor]:
    """Size-weighted merge of ``src`` tokens into ``dst`` tokens.

    Every token stands for ``size`` original patches. A kept token becomes
    the size-weighted average of itself and the tokens merged into it, and
    its size the sum of theirs, so sizes always add up to the original token
    count (as ToMe's ``merge_wavg``).

    Args:
        x (Tensor): (B, N, C) tokens.
        size (Tensor): (B, N) sizes; ones before the first merge.
        kept (Tensor): (B, M) indices of the surviving tokens.
        src (Tensor): (B, K) indices of the tokens merged away.
        dst (Tensor): (B, K) the kept token each ``src`` merges into.

    Returns:
        tuple[Tensor]: merged tokens (B, M, C) in ``x``'s dtype and their
        float32 sizes (B, M).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        size = size.float()
        total = x.float() * size.unsqueeze(-1)  # (B, N, C)
        total = total.scatter_add(1, _expand(dst, x),
                                  gather_tokens(total, src))  # (B, N, C)
        size = size.scatter_add(1, dst, size.gather(1, src))  # (B, N)
        size = size.gather(1, kept)  # (B, M)
        merged = gather_tokens(total, kept) / size.unsqueeze(-1)  # (B, M, C)
    return merged.to(x.dtype), size


def _expand(idx: Tensor, x: Tensor) -> Tensor:
    return idx.unsqueeze(-1).expand(-1, -1, x.shape[-1])


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """(B, N, C), (B, M) -> (B, M, C)."""
    return x.gather(1, _expand(idx, x))


def scatter_tokens(x: Tensor, idx: Tensor, src: Tensor) -> Tensor:
    """(B, N, C), (B, M), (B, M, C) -> ``x`` with ``src`` written at ``idx``.

    In place, like ``Tensor.scatter_``; returns ``x``.
    """
    return x.scatter_(1, _expand(idx, x), src)

