"""Where STA prunes and how many tokens each prune point leaves.

ViT: after blocks ``0``, ``depth // 3``, ``2 * depth // 3``, in ``T0``,
``T0 / 2``, ``T0 / 4`` groups (``T0`` slices), ``r`` dropped per group. Video
Swin: groups of 1, 2, 4 slices at stages 2, 3, 4 (:func:`swin_schedule`).
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

#: Number of prune points of the schedule.
NUM_PRUNE_POINTS = 3


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers."""
    return -(-a // b)


def visits_in_reverse(point: int) -> bool:
    """Whether prune point ``point`` (0, 1, 2) visits its groups latest-first.

    Point 1 does, as in the paper's released code (no reason given). Since
    the parity-scored group is visited first and redundancy flows from it,
    the direction alternates: forward at points 0 and 2, backward at 1.
    """
    return point == 1


def prune_layers(depth: int) -> Tuple[int, int, int]:
    """0-based indices of the blocks after which tokens are pruned."""
    if depth < NUM_PRUNE_POINTS:
        raise ValueError(f'depth={depth} is too shallow for STA: it prunes '
                         f'after {NUM_PRUNE_POINTS} distinct blocks, so '
                         f'depth must be >= {NUM_PRUNE_POINTS}.')
    return 0, depth // 3, 2 * depth // 3


def group_schedule(num_slices: int) -> Tuple[int, int, int]:
    """``(T0, T0 // 2, T0 // 4)`` groups at the prune points.

    Args:
        num_slices (int): ``T0``, ``num_frames // tubelet_size`` slices.
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
    sizes = []
    total = tokens_per_slice * num_slices
    for g in group_schedule(num_slices):
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
        # int(): under a jit trace (fvcore) the sizes are 0-d tensors
        sizes = [int(s) for s in group_sizes(tokens_per_slice, num_slices,
                                             drop_number)]
        raise ValueError(
            f'drop_number={drop_number} is too large for a grid of '
            f'{num_slices} slices x {tokens_per_slice} tokens: the groups at '
            f'the three prune points would hold {sizes} tokens and STA drops '
            'at most half of a group. The largest allowed drop_number is '
            f'{max_drop_number(tokens_per_slice, num_slices)}.')


def swin_grids(clip: Sequence[int], patch_size: Sequence[int]
               ) -> Tuple[int, List[Tuple[int, int]]]:
    """(T, H, W) clip -> slices ``D`` and the (H, W) token grid of stages 1-4.

    Video Swin pads the clip to whole patches and every patch merging to an
    even grid, hence the ceilings.
    """
    t, h, w = clip
    pt, ph, pw = patch_size
    grids = [(ceil_div(h, ph), ceil_div(w, pw))]
    for _ in range(3):
        grids.append((ceil_div(grids[-1][0], 2), ceil_div(grids[-1][1], 2)))
    return ceil_div(t, pt), grids


def swin_schedule(num_slices: int, stage_grids: Sequence[Tuple[int, int]],
                  drop_number: int) -> List[Dict[str, int]]:
    """The STA plan of stages 2, 3 and 4, one dict per prune point.

    Stages 2, 3, 4 drop ``r``, ``r // 4``, ``r // 16`` per group of 1, 2, 4
    slices. Stage 2's candidates are its grid; later, a group of the stage
    before keeping ``k`` of ``n`` positions carries ``ceil(k * m / n)`` of
    its ``m`` merged positions.

    Args:
        num_slices (int): ``D``, temporal slices of the token grid.
        stage_grids (Sequence[tuple[int]]): ``(H, W)`` of stages 2, 3 and 4.
        drop_number (int): ``r``.

    Returns:
        list[dict]: Per point: ``groups``, ``positions`` (grid positions per
        group), ``carried`` (0 at stage 2), ``candidates`` (per group before
        the drop), ``drop`` and ``kept`` (per group).
    """
    groups = (num_slices, num_slices // 2, num_slices // 4)
    drops = (drop_number, drop_number // 4, drop_number // 16)
    points: List[Dict[str, int]] = []
    for p, (g, d) in enumerate(zip(groups, drops)):
        h, w = stage_grids[p]
        positions = (num_slices // g) * h * w  # grid positions per group
        if p == 0:
            carried = 0
            candidates = positions
        else:
            prev = points[-1]
            # the previous group's keep ratio, over its merged positions
            merged = positions // 2
            carried = ceil_div(prev['kept'] * merged, prev['positions'])
            candidates = 2 * carried
        points.append(dict(groups=g, positions=positions, carried=carried,
                           candidates=candidates, drop=d, kept=candidates - d))
    return points


def swin_fits(points: List[Dict[str, int]]) -> bool:
    """Whether every group of a :func:`swin_schedule` keeps half or more."""
    return all(p['drop'] <= p['candidates'] // 2 for p in points)


def max_swin_drop(num_slices: int,
                  stage_grids: Sequence[Tuple[int, int]]) -> int:
    """Largest ``r`` for which every group keeps at least half its tokens."""
    h, w = stage_grids[0]
    r = h * w // 2
    while r > 0 and not swin_fits(swin_schedule(num_slices, stage_grids, r)):
        r -= 1
    return r


def swin_plan(clip: Sequence[int], patch_size: Sequence[int],
              drop_number: int) -> List[Dict[str, int]]:
    """:func:`swin_schedule` of a (T, H, W) clip; ``ValueError`` if unfit.

    Args:
        clip (Sequence[int]): ``(T, H, W)`` of the clip.
        patch_size (Sequence[int]): Video Swin's ``(pt, ph, pw)``.
        drop_number (int): ``r``.
    """
    t, h, w = clip
    d, grids = swin_grids(clip, patch_size)
    pt = patch_size[0]
    if d % 4:
        raise ValueError(
            f'STASwin3D with drop_number={drop_number} groups 1, 2 '
            'and 4 temporal slices at stages 2, 3 and 4, so the clip '
            f'must give a multiple of 4 slices, but T={t} frames give '
            f'ceil(T / patch_size[0]) = ceil({t} / {pt}) = {d}. Use e.g. '
            f'{8 * pt} or {16 * pt} frames.')
    points = swin_schedule(d, grids[1:], drop_number)
    if not swin_fits(points):
        sizes = [p['candidates'] for p in points]
        raise ValueError(
            f'drop_number={drop_number} is too large for a clip of '
            f'(T, H, W) = {(t, h, w)}: the groups at stages 2, 3 and 4 '
            f'would hold {sizes} tokens and STA drops at most half of a '
            'group. The largest allowed drop_number for this clip size '
            f'is {max_swin_drop(d, grids[1:])}.')
    return points


def kept_cells(positions: Tensor, grid: Sequence[int]) -> Tensor:
    """(B, M) kept positions in a flat time-major grid -> (B, D, h, w) bool.

    Args:
        positions (Tensor): (B, M) indices into the flat ``D*h*w`` grid.
        grid (Sequence[int]): ``(D, h, w)``.
    """
    d, h, w = grid
    cells = torch.zeros(positions.shape[0], d * h * w, dtype=torch.bool,
                        device=positions.device)  # (B, D*h*w)
    return cells.scatter_(1, positions, True).view(-1, d, h, w)
