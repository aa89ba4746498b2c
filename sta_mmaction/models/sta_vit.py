"""STAViT: MMAction2's VideoMAE ``VisionTransformer`` with STA pruning."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmaction.models.backbones.vit_mae import Attention, Block, \
    VisionTransformer
from mmaction.registry import MODELS
from torch import Tensor

from ..core import (MERGING, bipartite_match, check_drop_number,
                    gather_tokens, group_schedule, kept_cells, merge_tokens,
                    pack_kept, patch_change, prune_layers, rlt_keep,
                    saliency, select_tokens, token_counts,
                    validate_drop_number, visits_in_reverse)
from .strategy import (check_arguments, check_flag, check_known,
                       check_strategy_args, sample_generators)


def attention_with_keys(
        attn: Attention, x: Tensor, log_size: Optional[Tensor] = None,
        fused: bool = False,
        probs: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(B, N, C) -> output (B, N, C), head-averaged keys (B, N, C / h) and
    attention probabilities (B, N, N) or None.

    A copy of ``Attention.forward`` from mmaction 1.2.0 that also hands back
    the keys it computes, so STA never projects them a second time.

    Args:
        attn (Attention): The block's attention.
        x (Tensor): (B, N, C) normalised tokens.
        log_size (Tensor, optional): (B, N) log of patches per token, added to
            the logits (proportional attention; ``-inf`` masks a padding
            key). Defaults to None.
        fused (bool): Attend with ``F.scaled_dot_product_attention``
            (``log_size`` its mask). Defaults to False, the explicit softmax.
        probs (bool): Run the explicit softmax whatever ``fused`` says and
            return its head-averaged probabilities without ``log_size``
            (vid-TLDR's attention map). Defaults to False: None.
    """
    B, N, C = x.shape
    if hasattr(attn, 'q_bias'):
        k_bias = torch.zeros_like(attn.v_bias, requires_grad=False)
        qkv_bias = torch.cat((attn.q_bias, k_bias, attn.v_bias))
        qkv = F.linear(input=x, weight=attn.qkv.weight, bias=qkv_bias)
    else:
        qkv = attn.qkv(x)
    qkv = qkv.reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, h, N, C / h)
    # --- STA: fused attention, or proportional attention for merged tokens
    avg = None  # (B, N, N) head-averaged probabilities, if asked for
    if fused and not probs:
        mask = None if log_size is None else log_size[:, None, None, :].to(
            q.dtype)  # (B, 1, 1, N)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask,
            dropout_p=attn.attn_drop.p if attn.training else 0.,
            scale=attn.scale)  # (B, h, N, C / h)
        x = x.transpose(1, 2).reshape(B, N, -1)
    else:
        q = q * attn.scale
        a = q @ k.transpose(-2, -1)  # (B, h, N, N)
        if probs and log_size is not None:
            avg = a.softmax(dim=-1).mean(1)  # (B, N, N), without log_size
        if log_size is not None:
            a = a + log_size[:, None, None, :].to(a.dtype)  # (B, h, N, N)
        a = a.softmax(dim=-1)
        if probs and log_size is None:
            avg = a.mean(1)  # the same softmax, not computed twice
        a = attn.attn_drop(a)
        x = (a @ v).transpose(1, 2).reshape(B, N, -1)
    # --- end STA ---
    x = attn.proj(x)
    x = attn.proj_drop(x)
    # --- STA: keys averaged over heads (B, N, C / h), probabilities ---
    return x, k.mean(1), avg
    # --- end STA ---


def block_with_keys(
        blk: Block, x: Tensor, log_size: Optional[Tensor] = None,
        fused: bool = False,
        probs: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(B, N, C) -> ``Block.forward(x)``, the attention's keys and
    probabilities.

    A copy of ``Block.forward`` from mmaction 1.2.0; ``log_size``, ``fused``
    and ``probs`` as for :func:`attention_with_keys`.
    """
    # --- STA: the attention also returns its keys and probabilities ---
    y, keys, avg = attention_with_keys(blk.attn, blk.norm1(x), log_size,
                                       fused, probs)
    # --- end STA ---
    if hasattr(blk, 'gamma_1'):
        x = x + blk.drop_path(blk.gamma_1 * y)
        x = x + blk.drop_path(blk.gamma_2 * blk.mlp(blk.norm2(x)))
    else:
        x = x + blk.drop_path(y)
        x = x + blk.drop_path(blk.mlp(blk.norm2(x)))
    return x, keys, avg


@MODELS.register_module()
class STAViT(VisionTransformer):
    """VideoMAE ViT with Semantic-aware Temporal Accumulation pruning.

    Takes every argument of MMAction2's ``VisionTransformer`` (an unknown
    one is a ``ValueError``) and adds no parameter, so released checkpoints
    load with ``strict=True``. After the blocks ``0``, ``depth // 3`` and
    ``2 * depth // 3`` the tokens are cut into ``T0``, ``T0 / 2`` and
    ``T0 / 4`` groups (``T0 = num_frames / tubelet_size``), each of which
    loses ``drop_number`` tokens (:func:`sta_mmaction.core.select_tokens`),
    and the head mean-pools the rest. ``'tome'`` and ``'vidtldr'`` merge them
    into their best matches instead, and pool with a mean weighted by each
    token's size. ``rlt_threshold`` instead removes, before the first block,
    the tokens whose patches changed less (RLT's own adaptive budget); a
    batch is padded to its longest clip and the padding masked as keys and
    left out of the pooling.

    Args:
        drop_number (int): ``r``, tokens dropped per group at every prune
            point; ``0`` gives the stock model exactly. Defaults to 0.
        strategy (str): ``'sta'``, ``'random'``, ``'temporal'`` (STA without
            its semantic factor), ``'semantic'`` (that factor alone),
            ``'oracle'`` (each group's first tokens: a speed reference),
            ``'rlt'`` (the least changed patches, per clip), ``'tome'``
            (ToMe's merging) or ``'vidtldr'`` (vid-TLDR's saliency-weighted
            merging); see ``docs/strategies.md``. Defaults to ``'sta'``.
        seed (int, optional): Seed of ``'random'``, with each clip's content
            (:func:`sta_mmaction.core.clip_generators`), so a clip's tokens
            do not depend on the batch. Defaults to None, torch's global RNG.
        prop_attn (bool): With ``'tome'`` or ``'vidtldr'``, add
            ``log(size)`` to the logits after the first merge (proportional
            attention). Defaults to True.
        fused_attention (bool): Attend with ``F.scaled_dot_product_attention``
            at any ``drop_number`` (at 0 equal to stock to float rounding).
            Defaults to False: MMAction2's attention, bit-identical at 0.
        rlt_threshold (float, optional): RLT's threshold on the mean absolute
            change of a patch's normalised pixels; needs ``drop_number=0``
            and sets ``strategy='rlt'``. Defaults to None (no RLT removal).
        *args, **kwargs: Arguments of ``VisionTransformer``.
    """

    #: STA's settings, the arguments of :meth:`init_sta`.
    STA_SETTINGS = ('drop_number', 'strategy', 'seed', 'prop_attn',
                    'fused_attention', 'rlt_threshold')

    def __init__(self, *args, drop_number: int = 0, strategy: str = 'sta',
                 seed: Optional[int] = None, prop_attn: bool = True,
                 fused_attention: bool = False,
                 rlt_threshold: Optional[float] = None, **kwargs) -> None:
        check_arguments(STAViT, kwargs)
        super().__init__(*args, **kwargs)
        self.init_sta(drop_number, strategy, seed, prop_attn=prop_attn,
                      fused_attention=fused_attention,
                      rlt_threshold=rlt_threshold)

    def init_sta(self, drop_number: int = 0, strategy: str = 'sta',
                 seed: Optional[int] = None, **settings) -> None:
        """Check, then set, STA's settings on the built (stock) model.

        Also called by :func:`sta_mmaction.convert_backbone`.

        Args:
            drop_number (int): ``r``. Defaults to 0.
            strategy (str): See the class doc. Defaults to ``'sta'``.
            seed (int, optional): See the class doc. Defaults to None.
            **settings: ``prop_attn`` (bool, defaults to True),
                ``fused_attention`` (bool, defaults to False) and
                ``rlt_threshold`` (float, defaults to None).
        """
        check_known('STAViT', settings, self.STA_SETTINGS, what='setting')
        prop_attn = settings.get('prop_attn', True)
        fused = settings.get('fused_attention', False)
        threshold = settings.get('rlt_threshold')
        check_strategy_args(strategy, seed)
        check_flag('prop_attn', prop_attn)
        check_flag('fused_attention', fused)
        validate_drop_number(drop_number)
        if threshold is not None:
            strategy = check_rlt_threshold(threshold, drop_number, strategy)
        tubelet = self.patch_embed.projection.kernel_size[0]
        grid_h, grid_w = self.grid_size
        slices = self.pos_embed.shape[1] // (grid_h * grid_w)
        layers = prune_layers(len(self.blocks))
        if drop_number > 0:
            check_drop_number(drop_number, grid_h * grid_w, slices)
        if drop_number > 0 or threshold is not None:
            what = (f'drop_number={drop_number}' if drop_number else
                    f'rlt_threshold={threshold}')
            if self.return_feat_map:
                raise ValueError(
                    'return_feat_map=True needs the full token grid, but '
                    f'{what} prunes it. Use drop_number=0 (and no '
                    'rlt_threshold) for feature maps.')
            if self.fc_norm is None:
                raise ValueError(
                    'use_mean_pooling=False takes token 0 as the clip '
                    f'feature, which {what} reorders; STA needs '
                    'use_mean_pooling=True.')
        self.drop_number = drop_number
        self.strategy = strategy
        self.seed = seed
        self.prop_attn = prop_attn
        self.fused_attention = fused
        self.rlt_threshold = threshold
        self.tubelet_size = tubelet
        self.num_frames = slices * tubelet
        self.prune_layers = layers

    def token_counts(self, shape: Optional[Sequence[int]] = None) -> List[int]:
        """Tokens before the first prune point and after each one.

        Args:
            shape (Sequence[int], optional): The clip's ``(T, H, W)`` or the
                view's ``(B, C, T, H, W)``. Defaults to None, the built clip.
        """
        if self.rlt_threshold is not None:
            raise ValueError(
                f'rlt_threshold={self.rlt_threshold} keeps as many tokens as '
                'each clip has changing patches, so a shape has no token '
                'count; use clip_token_counts(clips).')
        slices, h, w = self._token_grid(shape)
        return token_counts(h * w, slices, self.drop_number)

    def clip_token_counts(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) clips -> (B, ) tokens each runs the blocks on."""
        self._check_input(x)
        if self.rlt_threshold is None:
            return torch.full((x.shape[0], ), self.token_counts(x.shape)[-1])
        change = patch_change(x, self.tubelet_size, self.patch_size)
        return rlt_keep(change, self.rlt_threshold).sum(1)  # (B, )

    def kept_grids(self, kept: Sequence[Tensor],
                   shape: Optional[Sequence[int]] = None) -> List[Tensor]:
        """Kept positions of :meth:`forward_pruned` as (t, h, w) grid cells.

        Returns, per prune point, a (B, T0, h, w) bool tensor, True at the
        cells (a tubelet of frames x a patch) of kept tokens.

        Args:
            kept (Sequence[Tensor]): (B, M) positions per prune point.
            shape (Sequence[int], optional): As for :meth:`token_counts`.
                Defaults to None.
        """
        grid = self._token_grid(shape)
        return [kept_cells(pos, grid) for pos in kept]

    def _token_grid(self, shape: Optional[Sequence[int]] = None
                    ) -> Tuple[int, int, int]:
        """(T0, h, w) token grid of a clip shape (see :meth:`token_counts`)."""
        slices = self.num_frames // self.tubelet_size
        if shape is None:
            return (slices, ) + tuple(self.grid_size)
        shape = tuple(int(n) for n in shape)
        if len(shape) not in (3, 5):
            raise ValueError(f'shape={shape} must be a clip (T, H, W) or a '
                             'view (B, C, T, H, W).')
        t, h, w = shape[-3:]
        if t // self.tubelet_size != slices:
            raise ValueError(
                f'STAViT was built for {self.num_frames} frames '
                f'({slices} slices of {self.tubelet_size}), but shape='
                f'{shape} has T={t}.')
        return slices, h // self.patch_size, w // self.patch_size

    def _check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` for a clip this model cannot take/prune."""
        if x.dim() != 5:
            raise ValueError(f'STAViT expects a (B, C, T, H, W) clip, got a '
                             f'tensor of shape {tuple(map(int, x.shape))}.')
        _, c, t, h, w = x.shape
        in_ch = self.patch_embed.projection.in_channels
        whole = not (h % self.patch_size or w % self.patch_size)
        slices = self.num_frames // self.tubelet_size
        pruned = self.drop_number or self.rlt_threshold is not None
        if (c != in_ch or t // self.tubelet_size != slices
                or (pruned and not whole)):
            raise ValueError(
                f'STAViT was built for clips of {in_ch} channels x '
                f'{self.num_frames} frames with sides divisible by '
                f'patch_size={self.patch_size} (img_size '
                f'{self.grid_size[0] * self.patch_size}), but got a clip of '
                f'shape (C, T, H, W) = {tuple(map(int, (c, t, h, w)))}.')
        grid = (h // self.patch_size, w // self.patch_size)
        if self.drop_number and grid != self.grid_size:
            check_drop_number(self.drop_number, grid[0] * grid[1], slices)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, C') clip features."""
        if (self.drop_number == 0 and not self.fused_attention
                and self.rlt_threshold is None):
            self._check_input(x)
            return super().forward(x)
        return self.forward_pruned(x)[0]

    def embed_tokens(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, N, C) tokens with position embedding.

        The embedding of ``VisionTransformer.forward`` (mmaction 1.2.0)."""
        h = x.shape[3] // self.patch_size
        w = x.shape[4] // self.patch_size
        x = self.patch_embed(x)[0]  # (B, N, C)
        if (h, w) != self.grid_size:
            pos_embed = self.pos_embed.reshape(-1, *self.grid_size,
                                               self.embed_dims)
            pos_embed = pos_embed.permute(0, 3, 1, 2)
            pos_embed = F.interpolate(
                pos_embed, size=(h, w), mode='bicubic', align_corners=False)
            pos_embed = pos_embed.permute(0, 2, 3, 1).flatten(1, 2)
            pos_embed = pos_embed.reshape(1, -1, self.embed_dims)
        else:
            pos_embed = self.pos_embed
        return self.pos_drop(x + pos_embed)

    def forward_pruned(self, x: Tensor,
                       draws: Optional[Sequence[Tensor]] = None
                       ) -> Tuple[Tensor, List[Tensor]]:
        """(B, C, T, H, W) -> features (B, C') and kept positions per point.

        A copy of ``VisionTransformer.forward`` from mmaction 1.2.0 with the
        pruning fenced in. Positions: per prune point, the (B, N_kept)
        indices of survivors in the full time-major grid, in the rule's order.
        With ``rlt_threshold`` one entry, before the first block, whose
        padding repeats the clip's first position. ``draws``: ``'random'``'s
        (B, G, n) uniform draws per prune point, instead of its generators
        (an exported graph takes them as inputs). Defaults to None.
        """
        # --- STA: validate the clip before any reshape can fail ---
        self._check_input(x)
        gens = sample_generators(self.strategy, self.seed, x) \
            if draws is None else None
        adaptive = self.rlt_threshold is not None
        change = None  # (B, N) RLT's change of each token's patch
        if self.strategy == 'rlt' and (self.drop_number or adaptive):
            change = patch_change(x, self.tubelet_size, self.patch_size)
        # --- end STA ---
        b = x.shape[0]
        x = self.embed_tokens(x)  # (B, N, C)

        # --- STA: prune after the blocks of self.prune_layers ---
        groups = group_schedule(self.num_frames // self.tubelet_size)
        point = {} if adaptive else dict(zip(self.prune_layers,
                                             range(len(groups))))
        positions = torch.arange(x.shape[1], device=x.device).expand(b, -1)
        merging = self.strategy in MERGING and self.drop_number > 0
        salient = self.strategy == 'vidtldr' and self.drop_number > 0
        fused = self.fused_attention
        # (B, N) patches per token ('tome'), saliency-weighted mass
        # ('vidtldr'), or 1 for a clip's token and 0 for padding (adaptive)
        size = log_size = None
        if merging:
            size = x.new_ones(b, x.shape[1], dtype=torch.float32)
        kept = []
        if adaptive:
            idx, valid = pack_kept(rlt_keep(change, self.rlt_threshold))
            x = gather_tokens(x, idx)  # (B, M, C), padded
            positions = torch.where(valid, idx, idx[:, :1])  # (B, M)
            size = valid.float()  # (B, M)
            log_size = size.log()  # -inf: padding is never attended to
            kept.append(positions)
        for i, blk in enumerate(self.blocks):
            if i not in point:
                x = blk(x) if log_size is None and not fused else \
                    block_with_keys(blk, x, log_size, fused)[0]
                continue
            p = point[i]
            # (B, N, C), (B, N, C / h), (B, N, N) or None
            x, keys, attn = block_with_keys(blk, x, log_size, fused, salient)
            if self.drop_number == 0:
                kept.append(positions)
                continue
            if merging:
                # vid-TLDR matches the tokens themselves, ToMe their keys
                idx, src, dst = bipartite_match(x if salient else keys,
                                                groups[p], self.drop_number)
                x, size = merge_tokens(
                    x, size, idx, src, dst,
                    saliency(attn) if salient else None)  # (B, N', C)
                if self.prop_attn:
                    log_size = size.log()  # (B, N')
            else:
                idx = select_tokens(
                    x, keys, groups[p], self.drop_number,
                    reverse=visits_in_reverse(p), strategy=self.strategy,
                    generator=gens if draws is None else draws[p],
                    change=None if change is None else
                    change.gather(1, positions))
                x = gather_tokens(x, idx)  # (B, N', C)
            positions = positions.gather(1, idx)  # (B, N')
            kept.append(positions)
        # --- end STA ---

        x = self.norm(x)
        # --- STA: merged tokens pool by their size, padding not at all ---
        if size is not None:
            w = size.to(x.dtype).unsqueeze(-1)  # (B, N', 1)
            return self.fc_norm((x * w).sum(1) / w.sum(1)), kept
        # --- end STA ---
        return self.fc_norm(x.mean(1)), kept


def check_rlt_threshold(threshold, drop_number: int, strategy: str) -> str:
    """The strategy ``rlt_threshold`` runs; ``ValueError`` if it cannot."""
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
            or not math.isfinite(threshold) or threshold < 0):
        raise ValueError(f'rlt_threshold={threshold!r} must be a finite '
                         'number >= 0 (RLT uses 0.1), or None.')
    if drop_number:
        raise ValueError(
            f'rlt_threshold={threshold} keeps a number of tokens that depends '
            f'on each clip, drop_number={drop_number} a fixed one; set '
            'drop_number=0 for the threshold, or rlt_threshold=None (with '
            "strategy='rlt') for the fixed budget.")
    if strategy not in ('sta', 'rlt'):
        raise ValueError(
            f'rlt_threshold={threshold} is RLT\'s own rule, but strategy='
            f"{strategy!r}; leave strategy at its default or set 'rlt'.")
    return 'rlt'
