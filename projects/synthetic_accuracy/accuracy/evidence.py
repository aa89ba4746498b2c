"""Class evidence per token, how much of it a reduction keeps, and oracles.

The generator's object masks (:func:`.synthetic_sets.load_masks`) say where
the class is in each frame. :func:`token_evidence` turns a mask into the
share of each token's tube (tubelet frames x patch pixels) that the object
covers, for the exact view the test pipeline cut (its ``frame_inds``,
``scale_factor`` and ``crop_bbox``); a token is *evidence* when the object
covers at least :data:`EVIDENCE_COVER` of it. :func:`kept_evidence` is the
share of a clip's evidence tokens still there after each prune point.

The two brackets, :class:`EvidenceOracle`, keep (``'keep_evidence'``) or drop
(``'drop_evidence'``) the tokens with the most evidence at every prune
point, with exactly the token counts of every other strategy. They are built
on the library's ``'oracle'`` strategy (each group keeps its first
``n - r`` tokens) and need nothing registered in it: a forward hook on the
backbone's ``pos_drop`` (the last module of the token embedding) reorders
each clip's tokens so that those first positions hold the tokens the oracle
keeps. ViT blocks are permutation-equivariant (the position embedding is
already added, attention has no positional bias) and the head mean-pools, so
the result is the model run on exactly the kept tokens. Unlike the other
strategies the oracles ignore the group boundaries: they rank all tokens.
"""
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from sta_mmaction.core import group_schedule, select_tokens, visits_in_reverse

#: Least share of a token's tube the object must cover for the token to
#: count as evidence.
EVIDENCE_COVER = 0.1

#: Bracket strategy -> whether it keeps (True) or drops the evidence.
BRACKETS = {'keep_evidence': True, 'drop_evidence': False}


def token_evidence(mask: np.ndarray, meta: Dict, tubelet: int,
                   patch: int) -> np.ndarray:
    """(T0, h, w) share of each token's tube that the object covers.

    Args:
        mask (np.ndarray): (T, S, S) bool object mask of the whole clip.
        meta (dict): The test view's geometry as the pipeline recorded it:
            ``frame_inds``, ``scale_factor`` (of ``Resize``, (w, h)) and
            ``crop_bbox`` (``x1, y1, x2, y2`` of the crop).
        tubelet (int): Frames per token.
        patch (int): Pixels per token side.

    Raises:
        ValueError: The view does not tile into tokens.
    """
    frames = mask[np.asarray(meta['frame_inds']).ravel()].astype(np.float32)
    sx, sy = (float(s) for s in np.asarray(meta.get('scale_factor',
                                                    (1., 1.))).ravel())
    if (sx, sy) != (1., 1.):
        h, w = frames.shape[1:]
        size = (int(round(w * sx)), int(round(h * sy)))
        frames = np.stack([
            cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames
        ])
    x1, y1, x2, y2 = (int(v) for v in np.asarray(meta['crop_bbox']).ravel())
    view = frames[:, y1:y2, x1:x2]  # (T, H, W)
    t, h, w = view.shape
    if t % tubelet or h % patch or w % patch:
        raise ValueError(f'a test view of (T, H, W) = {(t, h, w)} does not '
                         f'tile into tokens of {tubelet} frames x {patch} x '
                         f'{patch} pixels.')
    tubes = view.reshape(t // tubelet, tubelet, h // patch, patch, w // patch,
                         patch)
    return tubes.mean(axis=(1, 3, 5))  # (T0, h, w)


def kept_evidence(kept: Sequence[Tensor],
                  cover: Tensor) -> np.ndarray:
    """(B, P) share of each clip's evidence tokens kept after each point.

    Args:
        kept (Sequence[Tensor]): Per prune point, (B, M) positions of the
            surviving tokens in the full time-major grid (as
            ``STAViT.forward_pruned`` returns them).
        cover (Tensor): (B, N) object cover of every token, time-major
            (:func:`token_evidence` flattened).

    Returns:
        np.ndarray: (B, P) float64; NaN for a clip without evidence tokens.
    """
    evidence = cover >= EVIDENCE_COVER  # (B, N)
    total = evidence.sum(1).double()  # (B, )
    out = []
    for pos in kept:
        hit = evidence.gather(1, pos.to(evidence.device))  # (B, M)
        out.append(hit.sum(1).double() / total)
    share = torch.stack(out, 1) if out else total.new_zeros(len(total), 0)
    return share.numpy()  # NaN where total is 0


def slot_order(num_tokens: int, num_slices: int, r: int,
               device: Optional[torch.device] = None) -> Tensor:
    """(N, ) token slots from first dropped to last kept, under 'oracle'.

    The library's ``'oracle'`` strategy keeps each group's first ``n - r``
    tokens at every prune point; this runs its selector on the slot indices
    themselves, so the order follows the library's rule, whatever it is.
    Slots dropped at an earlier point come first; the survivors of the last
    point come last; inside each, ascending slot.

    Args:
        num_tokens (int): N.
        num_slices (int): T0, temporal slices (the first point's groups).
        r (int): Tokens dropped per group at every point.
        device (torch.device, optional): Device of the result. Defaults to
            None, the CPU.
    """
    slots = torch.arange(num_tokens, device=device)  # (N, )
    gone = []
    for p, groups in enumerate(group_schedule(num_slices)):
        dummy = slots.new_zeros(1, len(slots), 1, dtype=torch.float32)
        idx = select_tokens(dummy, None, groups, r, visits_in_reverse(p),
                            strategy='oracle')[0]  # (M, )
        keep = torch.zeros(len(slots), dtype=torch.bool, device=device)
        keep[idx] = True
        gone.append(slots[~keep].sort().values)
        slots = slots[idx]
    return torch.cat(gone + [slots.sort().values])  # (N, )


class EvidenceOracle:
    """Keep or drop the tokens with the most evidence, at the same budget.

    Use as a context around forwards of an ``STAViT`` set to
    ``strategy='oracle'`` at ``drop_number=r``; :meth:`set_cover` gives the
    batch's token cover first, :meth:`true_positions` maps the kept
    positions that ``forward_pruned`` returns back to the clip's grid.

    Args:
        backbone (nn.Module): An ``STAViT``.
        keep (bool): True keeps the most covered tokens, False drops them.
        r (int): The backbone's ``drop_number``.
    """

    def __init__(self, backbone, keep: bool, r: int) -> None:
        self.backbone = backbone
        self.keep = keep
        self.r = r
        self.perm: Optional[Tensor] = None  # (B, N) slot -> token
        self._cover: Optional[Tensor] = None
        self._handle = None

    def __enter__(self) -> 'EvidenceOracle':
        if self.backbone.strategy != 'oracle' or \
                self.backbone.drop_number != self.r:
            raise ValueError(
                'EvidenceOracle needs the backbone at strategy=\'oracle\', '
                f'drop_number={self.r}; it is at '
                f'strategy={self.backbone.strategy!r}, drop_number='
                f'{self.backbone.drop_number}.')
        self._handle = self.backbone.pos_drop.register_forward_hook(
            self._reorder)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self._handle = None

    def set_cover(self, cover: Tensor) -> None:
        """(B, N) object cover of the next forward's tokens, time-major."""
        self._cover = cover

    def _reorder(self, module, args, x: Tensor) -> Tensor:
        if self._cover is None or self._cover.shape != x.shape[:2]:
            raise ValueError(
                'EvidenceOracle got tokens of shape '
                f'{tuple(x.shape[:2])} but a cover of '
                f'{None if self._cover is None else tuple(self._cover.shape)}'
                '; call set_cover() with the batch\'s (B, N) cover first.')
        b, n, c = x.shape
        slices = self.backbone.num_frames // self.backbone.tubelet_size
        slots = slot_order(n, slices, self.r, x.device)  # (N, )
        cover = self._cover.to(x.device).float()
        # tokens by rising cover, ties in grid order: the least covered
        # fill the slots dropped first (or the most, to drop the evidence)
        score = cover if self.keep else -cover
        ranked = torch.sort(score, dim=1, stable=True).indices  # (B, N)
        perm = torch.empty_like(ranked)
        perm[:, slots] = ranked  # (B, N) slot -> token
        self.perm = perm
        self._cover = None  # one batch only
        return x.gather(1, perm[..., None].expand(b, n, c))  # (B, N, C)

    def true_positions(self, kept: Sequence[Tensor]) -> List[Tensor]:
        """Kept slots of ``forward_pruned`` -> (B, M) grid positions."""
        return [self.perm.gather(1, pos) for pos in kept]
