"""STASwin3D: Video Swin with STA pruning (design notes in swin_layers)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from einops import rearrange
from mmaction.models.backbones.swin import SwinTransformer3D
from mmaction.registry import MODELS
from torch import Tensor

from ..core import (STRATEGIES, kept_cells, swin_grids, swin_plan,
                    visits_in_reverse)
from .strategy import (check_arguments, check_flag, check_known,
                       check_strategy_args, sample_generators)
from .swin_layers import layer_forward_fused, merge_kept, stage_forward_kept

_MERGED = ('merged tokens stand for patches from anywhere in their group, '
           'but window attention and patch merging address every token by '
           'one grid position.')

#: Strategies STASwin3D refuses, and why.
SWIN_REFUSED = {
    'tome': f"ToMe's {_MERGED}",
    'vidtldr': f"vid-TLDR's {_MERGED}",
    'rlt': 'RLT keeps the first temporal slice whole and takes its budget '
           'from the later ones, but the Swin schedule carries the same '
           'number of tokens per group of slices through every patch '
           'merging (swin_schedule).',
}

#: Strategies STASwin3D supports.
SWIN_STRATEGIES = tuple(s for s in STRATEGIES if s not in SWIN_REFUSED)

#: (T, H, W) assumed when given no shape: the paper's 32 frames of 224^2.
DEFAULT_CLIP = (32, 224, 224)


@MODELS.register_module()
class STASwin3D(SwinTransformer3D):
    """Video Swin with Semantic-aware Temporal Accumulation pruning.

    Takes every argument of MMAction2's ``SwinTransformer3D`` (an unknown
    one is a ``ValueError``) and adds no parameter or buffer, so released
    checkpoints load with ``strict=True``. STA prunes at the start of stages
    2, 3 and 4, where groups of 1, 2 and 4 temporal slices lose ``r``,
    ``r // 4`` and ``r // 16`` tokens each; for 32 x 224^2 the blocks of
    stages 1-4 see ``50176``, ``12544 - 16r``, ``3136 - 6r`` and
    ``784 - 1.75r`` tokens (``r % 16 == 0``). With ``drop_number > 0`` the
    output is the mean of the kept, normed stage-4 tokens as a
    ``(B, C, 1, 1, 1)`` map, which ``I3DHead``'s average pool leaves as is.

    Args:
        drop_number (int): ``r``, tokens dropped per slice at stage 2; ``0``
            gives the stock backbone exactly. Needs ``out_indices=(3, )`` and
            ``ceil(T / patch_size[0])`` a multiple of 4. Defaults to 0.
        strategy (str): One of :data:`SWIN_STRATEGIES` (see ``STAViT``).
            Defaults to ``'sta'``.
        seed (int, optional): Seed of ``'random'``, per clip as in
            ``STAViT``. Defaults to None, torch's global RNG.
        fused_attention (bool): Window attention through
            ``F.scaled_dot_product_attention`` (bias, shift and pruned keys
            as one float mask) at any ``drop_number`` (at 0 equal to stock to
            float rounding). Defaults to False, bit-identical to stock at 0.
        *args, **kwargs: Arguments of ``SwinTransformer3D``.
    """

    #: STA's settings, the arguments of :meth:`init_sta`.
    STA_SETTINGS = ('drop_number', 'strategy', 'seed', 'fused_attention')

    def __init__(self, *args, drop_number: int = 0, strategy: str = 'sta',
                 seed: Optional[int] = None, fused_attention: bool = False,
                 **kwargs) -> None:
        check_arguments(STASwin3D, kwargs)
        super().__init__(*args, **kwargs)
        self.init_sta(
            drop_number, strategy, seed, fused_attention=fused_attention)

    def init_sta(self, drop_number: int = 0, strategy: str = 'sta',
                 seed: Optional[int] = None, **settings) -> None:
        """Check, then set, STA's settings on the built (stock) model.

        Also called by :func:`sta_mmaction.convert_backbone`.

        Args:
            drop_number (int): ``r``. Defaults to 0.
            strategy (str): See the class doc. Defaults to ``'sta'``.
            seed (int, optional): See the class doc. Defaults to None.
            **settings: ``fused_attention`` (bool). Defaults to False.
        """
        check_known('STASwin3D', settings, self.STA_SETTINGS, what='setting')
        fused = settings.get('fused_attention', False)
        check_flag('fused_attention', fused)
        check_strategy_args(strategy, seed, SWIN_STRATEGIES,
                            why=SWIN_REFUSED.get(strategy, ''))
        if isinstance(drop_number, bool) or not isinstance(drop_number, int):
            raise ValueError(f'drop_number must be an int, got '
                             f'{drop_number!r} ({type(drop_number).__name__})'
                             '.')
        if drop_number < 0:
            raise ValueError(
                f'drop_number={drop_number} is negative; it is the number of '
                'tokens STA drops per temporal slice at stage 2 and must be '
                '>= 0 (0 disables pruning).')
        if drop_number > 0:
            if self.num_layers != 4:
                raise ValueError(
                    f'drop_number={drop_number} needs the 4 stages of Video '
                    'Swin (STA prunes at stages 2, 3 and 4), but this arch '
                    f'has depths={list(self.depths)}.')
            if tuple(self.out_indices) != (self.num_layers - 1, ):
                raise ValueError(
                    f'out_indices={tuple(self.out_indices)} asks for feature '
                    f'maps of early stages, which drop_number={drop_number} '
                    'prunes; STA needs out_indices=(3, ).')
        self.drop_number = drop_number
        self.strategy = strategy
        self.seed = seed
        self.fused_attention = fused

    def train(self, mode: bool = True) -> 'STASwin3D':
        """``SwinTransformer3D.train``, returning ``self`` as torch does."""
        super().train(mode)
        return self

    def token_schedule(self, shape: Optional[Sequence[int]] = None
                       ) -> List[Dict[str, int]]:
        """The per-point plan of :func:`sta_mmaction.core.swin_schedule`.

        Args:
            shape (Sequence[int], optional): The clip's ``(T, H, W)`` or the
                view's ``(B, C, T, H, W)``. Defaults to None, 32 x 224 x 224.
        """
        return swin_plan(
            _clip(shape), self.patch_embed.patch_size, self.drop_number)

    def token_counts(self, shape: Optional[Sequence[int]] = None) -> List[int]:
        """Tokens the blocks of stages 1, 2, 3 and 4 run on, per clip.

        The patch merging into stage 3 (4) runs on ``groups * candidates``
        of ``token_schedule()[1]`` (``[2]``).

        Args:
            shape (Sequence[int], optional): As for :meth:`token_schedule`.
                Defaults to None, 32 x 224 x 224.
        """
        clip = _clip(shape)
        d, grids = swin_grids(clip, self.patch_embed.patch_size)
        counts = [d * grids[0][0] * grids[0][1]]
        if self.drop_number == 0:
            return counts + [d * h * w for h, w in grids[1:]]
        return counts + [p['groups'] * p['kept']
                         for p in self.token_schedule(clip)]

    def kept_grids(self, kept: Sequence[Tensor],
                   shape: Optional[Sequence[int]] = None) -> List[Tensor]:
        """Kept positions of :meth:`forward_pruned` as (t, h, w) grid cells.

        Returns, per prune point, a (B, D, h, w) bool tensor on the stage's
        token grid, True at the cells of kept tokens.

        Args:
            kept (Sequence[Tensor]): (B, M) positions per stage 2, 3, 4.
            shape (Sequence[int], optional): As for :meth:`token_schedule`.
                Defaults to None, 32 x 224 x 224.
        """
        d, grids = swin_grids(_clip(shape), self.patch_embed.patch_size)
        return [kept_cells(pos, (d, ) + g) for pos, g in zip(kept, grids[1:])]

    def _check_input(self, x: Tensor) -> List[Dict[str, int]]:
        """The schedule for clip ``x``; ``ValueError`` if it cannot take x."""
        if x.dim() != 5:
            raise ValueError(f'STASwin3D expects a (B, C, T, H, W) clip, got '
                             f'a tensor of shape {tuple(map(int, x.shape))}.')
        c = x.shape[1]
        if c != self.patch_embed.in_channels:
            raise ValueError(
                f'STASwin3D was built for in_channels='
                f'{self.patch_embed.in_channels}, but got a clip of shape '
                f'(C, T, H, W) = {tuple(map(int, x.shape[1:]))}.')
        return self.token_schedule(x.shape)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> stock feature map, or (B, C', 1, 1, 1)."""
        if self.drop_number == 0:
            if self.fused_attention:
                return self.forward_fused(x)
            return super().forward(x)
        return self.forward_pruned(x)[0]

    def forward_fused(self, x: Tensor) -> Union[Tensor, Tuple[Tensor]]:
        """(B, C, T, H, W) -> the stock outputs, with fused attention.

        A copy of ``SwinTransformer3D.forward`` from mmaction 1.2.0 whose
        stages run ``swin_layers.layer_forward_fused``; nothing is pruned.
        """
        x = self.patch_embed(x)
        x = self.pos_drop(x)
        outs = []
        for i, layer in enumerate(self.layers):
            # --- STA: the stage with fused attention ---
            x = layer_forward_fused(layer, x.contiguous(),
                                    do_downsample=self.out_after_downsample)
            # --- end STA ---
            if i in self.out_indices:
                norm_layer = getattr(self, f'norm{i}')
                out = norm_layer(x)
                out = rearrange(out, 'b d h w c -> b c d h w').contiguous()
                outs.append(out)
            if layer.downsample is not None and not self.out_after_downsample:
                x = layer.downsample(x)
            if i < self.num_layers - 1:
                x = rearrange(x, 'b d h w c -> b c d h w')
        if len(outs) == 1:
            return outs[0]
        return tuple(outs)

    def forward_pruned(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """(B, C, T, H, W) -> pooled features and kept positions per stage.

        A copy of ``SwinTransformer3D.forward`` from mmaction 1.2.0 with the
        pruning fenced in (``drop_number=0`` runs it too, dropping nothing).
        Returns the ``(B, C', 1, 1, 1)`` mean of the kept, normed stage-4
        tokens and, for stages 2, 3 and 4, the (B, M) positions of the kept
        tokens in the stage's flat time-major ``D*H*W`` grid.
        """
        # --- STA: validate the clip and plan the schedule ---
        points = self._check_input(x)
        gens = sample_generators(self.strategy, self.seed, x)
        # --- end STA ---
        x = self.patch_embed(x)
        x = self.pos_drop(x)

        # --- STA: stage 1 in full, stages 2-4 on kept tokens ---
        first = self.layers[0]
        if self.fused_attention:
            x = layer_forward_fused(first, x.contiguous(), False)
        else:
            x = first(x.contiguous(), do_downsample=False)  # (B, D, H, W, C)
        x = first.downsample(x)  # (B, D, H2, W2, 2C)
        b, d, h, w, c = x.shape
        grid_in = x.reshape(b, d * h * w, c)  # last features, stage input
        tokens = grid_in  # (B, N2, C2) candidates
        pos = torch.arange(d * h * w, device=x.device).expand(b, -1)
        kept = []
        for p, layer in enumerate(self.layers[1:]):
            if p > 0:
                tokens, pos, grid_in, (d, h, w) = merge_kept(
                    self.layers[p].downsample, grid_in, tokens, pos,
                    (d, h, w), points[p - 1]['groups'], points[p]['carried'])
            tokens, pos = stage_forward_kept(layer, tokens, pos, (d, h, w),
                                             points[p], visits_in_reverse(p),
                                             self.strategy, gens,
                                             self.fused_attention)
            kept.append(pos)
        norm_layer = getattr(self, f'norm{self.num_layers - 1}')
        out = norm_layer(tokens).mean(1)  # (B, C'), kept tokens only
        # --- end STA ---
        return out[:, :, None, None, None], kept


def _clip(shape: Optional[Sequence[int]]) -> Tuple[int, int, int]:
    """(T, H, W) of a clip ``(T, H, W)`` or view ``(B, C, T, H, W)`` shape."""
    if shape is None:
        return DEFAULT_CLIP
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (3, 5):
        raise ValueError(f'shape={shape} must be a clip (T, H, W) or a view '
                         '(B, C, T, H, W).')
    return shape[-3:]
