"""STASwin3D: MMAction2's Video Swin ``SwinTransformer3D`` with STA pruning.

The paper (Ding et al., ICCV 2023) applies STA to Video Swin but never
released that code; the design here is fitted to its GFLOPs table (see the
class docstring). Window attention keeps running on full windows, with pruned
positions masked out as keys, while the per-token layers (qkv, output
projection, MLP, patch-merging reduction) run on the kept tokens only, by
gather and scatter, so that neither fvcore nor the clock sees work that is
not done. The attention itself (matmuls, softmax, bias) is not reduced, and
on CPUs it and the unpruned stage 1 take most of Video Swin's time, so the
wall-clock gain there stays below the FLOPs ratio (see
``tools/analysis_tools/benchmark_swin_cpu.py``, which prints the bound).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmaction.models.backbones.swin import (PatchMerging, SwinTransformer3D,
                                            SwinTransformerBlock3D,
                                            compute_mask, get_window_size)
from mmaction.registry import MODELS
from torch import Tensor

from ..core import STRATEGIES, gather_tokens, scatter_tokens, sta_select
from ..core.sta import Generators
from .strategy import (check_known, check_strategy_args, init_arguments,
                       sample_generators)

#: Logit added to pruned keys. A row that holds any kept key gives them
#: exactly zero weight (``exp`` underflows); a row without one (a pruned
#: query, whose output is discarded) stays finite, where ``-inf`` would give
#: NaN. It is finite in fp16 too.
PRUNED_KEY_BIAS = -1e4

#: Strategies STASwin3D supports: all that select tokens. ToMe's merging is
#: left out because a merged token stands for patches from anywhere in its
#: group, while Swin's window attention, relative position bias and patch
#: merging address each token by its single grid position.
SWIN_STRATEGIES = tuple(s for s in STRATEGIES if s != 'tome')

#: (T, H, W) that :meth:`STASwin3D.token_counts` assumes before any forward:
#: the paper's view, 32 frames of 224 x 224.
DEFAULT_CLIP = (32, 224, 224)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def swin_schedule(num_slices: int, stage_grids: Sequence[Tuple[int, int]],
                  drop_number: int) -> List[Dict[str, int]]:
    """The STA plan of stages 2, 3 and 4, one dict per prune point.

    Stage ``s`` (2, 3, 4) cuts its candidate tokens into ``groups`` = ``D``,
    ``D / 2``, ``D / 4`` groups of 1, 2 and 4 temporal slices and drops
    ``drop`` = ``r``, ``r // 4``, ``r // 16`` tokens per group. At stage 2
    every position of the grid is a candidate; at stages 3 and 4 the
    candidates are the tokens carried through the patch merging: each group
    of the stage before, keeping ``k`` of its ``n`` grid positions, carries
    ``ceil(k * m / n)`` of its ``m`` merged positions (``ceil(k / 4)`` for
    even grids).

    Args:
        num_slices (int): ``D``, temporal slices of the token grid.
        stage_grids (Sequence[tuple[int]]): ``(H, W)`` of stages 2, 3 and 4.
        drop_number (int): ``r``.

    Returns:
        list[dict]: Per point: ``groups``, ``positions`` (grid positions per
        group), ``carried`` (merged tokens each group of the previous stage
        passes on; 0 at stage 2), ``candidates``
        (tokens per group before the drop), ``drop`` and ``kept`` (per
        group).
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
            carried = _ceil_div(prev['kept'] * merged, prev['positions'])
            candidates = 2 * carried
        points.append(
            dict(
                groups=g,
                positions=positions,
                carried=carried,
                candidates=candidates,
                drop=d,
                kept=candidates - d))
    return points


def _fits(points: List[Dict[str, int]]) -> bool:
    return all(p['drop'] <= p['candidates'] // 2 for p in points)


def max_swin_drop(num_slices: int, stage_grids: Sequence[Tuple[int,
                                                               int]]) -> int:
    """Largest ``r`` for which every group keeps at least half its tokens."""
    h, w = stage_grids[0]
    r = h * w // 2
    while r > 0 and not _fits(swin_schedule(num_slices, stage_grids, r)):
        r -= 1
    return r


class _KeptGrid:
    """Where a stage's kept tokens sit in its (padded, shifted) windows.

    Rather than scattering into the grid and then padding, rolling and
    partitioning it (as stock does with the whole grid), each kept token's
    slot in the windowed layout is computed once per stage, and the blocks
    scatter their qkv straight into the windows and gather their outputs
    straight out of them.

    Args:
        pos (Tensor): (B, M) kept positions in the flat ``D*H*W`` grid.
        dhw (tuple[int]): ``(D, H, W)`` of the stage.
    """

    def __init__(self, pos: Tensor, dhw: Tuple[int, int, int]) -> None:
        self.pos = pos
        self.dhw = dhw
        self._cache: Dict[tuple, Tuple[Tensor, Tensor]] = {}

    def padded_shape(self, window_size: Sequence[int]) -> Tuple[int, ...]:
        return tuple(
            _ceil_div(n, w) * w for n, w in zip(self.dhw, window_size))

    def _slot(self, pos: Tensor, window_size: Sequence[int],
              shift_size: Sequence[int]) -> Tensor:
        """Flat grid positions -> index in the (nW * N) windowed layout.

        ``torch.roll`` by ``-shift`` moves index ``p`` to ``p - shift``, and
        ``window_partition`` orders windows, then positions inside a window,
        time-major.
        """
        _, h, w = self.dhw
        dp, hp, wp = self.padded_shape(window_size)
        wd, wh, ww = window_size
        sd, sh, sw = shift_size
        d_i = (pos // (h * w) - sd) % dp
        h_i = (pos // w % h - sh) % hp
        w_i = (pos % w - sw) % wp
        win = (d_i // wd * (hp // wh) + h_i // wh) * (wp // ww) + w_i // ww
        off = (d_i % wd * wh + h_i % wh) * ww + w_i % ww
        return win * (wd * wh * ww) + off

    def windows(self, window_size: Sequence[int], shift_size: Sequence[int],
                mask_matrix: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """(B, M) slots of the kept tokens and the additive mask.

        The mask is (B * nW, 1, N, N): the shifted-window mask where the
        block shifts, plus :data:`PRUNED_KEY_BIAS` on pruned keys. Padding
        stays a key, as in stock Swin, where it holds ``qkv(0)``.

        Stock Swin masks the other regions of a shifted window with a logit
        of -100, whose softmax weight (about ``e^-100``) is a subnormal
        float: it changes no output in float32 but slows the attention
        matmul several times on x86 CPUs. Here those keys get
        :data:`PRUNED_KEY_BIAS` too, whose weight is exactly zero.
        """
        key = (tuple(window_size), tuple(shift_size))
        if key not in self._cache:
            d, h, w = self.dhw
            dp, hp, wp = self.padded_shape(window_size)
            n = window_size[0] * window_size[1] * window_size[2]
            b = self.pos.shape[0]
            device = self.pos.device
            slot = self._slot(self.pos, window_size, shift_size)  # (B, M)
            real = self._slot(
                torch.arange(d * h * w, device=device), window_size,
                shift_size)  # (D*H*W, )
            pruned = torch.zeros(
                b, dp * hp * wp, dtype=torch.bool, device=device)
            pruned[:, real] = True
            pruned = pruned.scatter(1, slot,
                                    torch.zeros_like(slot, dtype=torch.bool))
            bias = torch.zeros(b, dp * hp * wp, device=device)
            bias = bias.masked_fill(pruned, PRUNED_KEY_BIAS)
            bias = bias.view(-1, 1, 1, n)  # (B*nW, 1, 1, N)
            if mask_matrix is not None and any(i > 0 for i in shift_size):
                nw = mask_matrix.shape[0]
                shift = torch.where(mask_matrix < 0, PRUNED_KEY_BIAS,
                                    0.).to(bias.dtype)  # (nW, N, N)
                bias = (bias.view(b, nw, 1, n) +
                        shift.unsqueeze(0)).view(-1, 1, n, n)
            self._cache[key] = (slot, bias)
        return self._cache[key]


def window_attention_core(blk: SwinTransformerBlock3D, windows: Tensor,
                          mask: Tensor) -> Tensor:
    """(B*nW, N, 3C) windowed qkv -> (B*nW, N, C) attention, before proj.

    A copy of ``WindowAttention3D.forward`` from mmaction 1.2.0 that starts
    from an already computed qkv, stops before the output projection, and
    takes one additive mask (shifted windows and pruned keys together).
    """
    attn = blk.attn
    B_, N, C3 = windows.shape
    C = C3 // 3
    # --- STA: qkv was computed on the kept tokens and scattered ---
    qkv = windows.reshape(B_, N, 3, attn.num_heads,
                          C // attn.num_heads).permute(2, 0, 3, 1, 4)
    # --- end STA ---
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B_, nH, N, C / nH)

    q = q * attn.scale
    a = q @ k.transpose(-2, -1)  # (B_, nH, N, N)

    relative_position_bias = attn.relative_position_bias_table[
        attn.relative_position_index[:N, :N].reshape(-1)].reshape(
            N, N, -1)  # (N, N, nH)
    relative_position_bias = relative_position_bias.permute(
        2, 0, 1).contiguous()  # (nH, N, N)
    a = a + relative_position_bias.unsqueeze(0)  # (B_, nH, N, N)

    # --- STA: one mask for shifted windows and pruned keys, in place ---
    a += mask.to(a.dtype)  # (B_, 1, N or 1, N) broadcast
    # --- end STA ---
    a = attn.softmax(a)
    a = attn.attn_drop(a)
    return (a @ v).transpose(1, 2).reshape(B_, N, C)  # (B_, N, C)


def block_forward_kept(blk: SwinTransformerBlock3D,
                       x: Tensor,
                       grid: _KeptGrid,
                       mask_matrix: Tensor,
                       qkv: Optional[Tensor] = None) -> Tensor:
    """(B, M, C) kept tokens -> ``SwinTransformerBlock3D.forward`` on them.

    A copy of ``SwinTransformerBlock3D.forward`` (with ``forward_part1``)
    from mmaction 1.2.0. norm1, qkv, proj and the MLP run on the ``M`` kept
    tokens; only the attention matmuls see the full windows, into which the
    qkv of the kept tokens is scattered (padding holds ``qkv(0)``, the qkv
    bias, as in stock). The pad / roll / partition of stock become one
    scatter into the windowed layout, and the reverse one gather.
    ``with_cp`` is not honoured.

    Args:
        blk (SwinTransformerBlock3D): The block.
        x (Tensor): (B, M, C) kept tokens.
        grid (_KeptGrid): Their positions.
        mask_matrix (Tensor): The stage's shifted-window mask.
        qkv (Tensor, optional): (B, M, 3C) their qkv, when the prune point
            already computed it. Defaults to None.
    """
    B, M, C = x.shape
    window_size, shift_size = get_window_size(grid.dhw, blk.window_size,
                                              blk.shift_size)
    shortcut = x
    # --- STA: qkv on kept tokens, scattered into the windows ---
    if qkv is None:
        qkv = blk.attn.qkv(blk.norm1(x))  # (B, M, 3C)
    slot, mask = grid.windows(window_size, shift_size, mask_matrix)
    n = window_size[0] * window_size[1] * window_size[2]
    bias = blk.attn.qkv.bias
    if bias is None:
        fill = qkv.new_zeros(3 * C)
    else:  # stock pads after norm1, so padding holds qkv(0) = bias
        fill = bias.to(qkv.dtype)
    windows = fill.expand(B, mask.shape[0] // B * n, 3 * C).contiguous()
    scatter_tokens(windows, slot, qkv)  # (B, nW*N, 3C)
    out = window_attention_core(blk, windows.view(-1, n, 3 * C),
                                mask)  # (B*nW, N, C)
    out = gather_tokens(out.view(B, -1, C), slot)  # (B, M, C)
    out = blk.attn.proj_drop(blk.attn.proj(out))  # (B, M, C)
    # --- end STA ---
    x = shortcut + blk.drop_path(out)
    x = x + blk.forward_part2(x)  # (B, M, C)
    return x


@MODELS.register_module()
class STASwin3D(SwinTransformer3D):
    """Video Swin with Semantic-aware Temporal Accumulation pruning.

    Takes every argument of MMAction2's ``SwinTransformer3D`` and adds no
    parameter or buffer, so released checkpoints load with ``strict=True``.

    Schedule (the issue's "stage by stage" fit of the paper's table). With
    ``D`` temporal slices (16 for 32 frames) and ``r = drop_number``, STA
    prunes at the start of stages 2, 3 and 4, before their first block:

    * stage 2: groups of 1 slice (``D`` groups), ``r`` tokens per group;
    * stage 3: groups of 2 slices, ``r // 4`` per group (in reverse time
      order, as the ViT's middle point);
    * stage 4: groups of 4 slices, ``r // 16`` per group.

    Stage 1 runs in full. Between stages the kept set is carried through the
    patch merging: each group of the previous stage keeps its keep ratio,
    passing on ``ceil(k / 4)`` merged tokens for ``k`` kept tokens (even
    grids; see :func:`swin_schedule`), those 2x2 positions with the
    most kept children (ties: the larger channel-sum of ``|x|`` over the kept
    children). For 32 x 224^2 the blocks of stages 1-4 see ``50176``,
    ``12544 - 16r``, ``3136 - 6r`` and ``784 - 1.75r`` tokens
    (``r % 16 == 0``). The other fit of the issue (two points in stage 2)
    gives the same FLOPs; this one is chosen because its three points reuse
    the ViT's schedule (groups of 1, 2 and 4 slices, ``T0, T0/2, T0/4``) on
    each stage's own grid, and every stage is priced by one rule.

    STA score at a prune point: :func:`sta_mmaction.core.sta_select` on the
    stage's candidate tokens (time-major, in groups), with the stage input
    as activations and, as keys, the first block's own attention keys
    ``W_k norm1(x) + b_k`` averaged over heads. The keys are computed for all
    candidates (``C^2`` per token), the queries and values only for the kept
    ones, and the block reuses the keys.

    Fill of pruned positions:

    * window attention: the kept tokens' qkv is scattered into the full
      (padded, shifted) windows; pruned positions get
      :data:`PRUNED_KEY_BIAS` on their key logits, so a kept query (always
      its own key) never sees them, and their own outputs are discarded;
    * patch merging: a pruned position holds its last features (the stage
      input, since it skipped every block of the stage); a position that the
      previous carry dropped holds zeros. The merged 2x2 vector of a kept
      position then looks like stock's rather than zero-diluted;
    * final pooling: ``norm3`` and the mean run over the kept tokens only.
      With ``drop_number > 0`` the output is this mean as a
      ``(B, C, 1, 1, 1)`` map, which ``I3DHead``'s average pool leaves as
      is; it is not a spatial feature map.

    ``strategy`` swaps the rule for a baseline or an ablation at the same
    prune points and the same ``r`` per group, as in ``STAViT``: token
    counts, FLOPs and the fill of pruned positions stay the same.

    Args:
        drop_number (int): ``r``, tokens dropped per slice at stage 2 (see
            above for stages 3 and 4). ``0`` gives the stock backbone
            exactly. Needs ``ceil(T / patch_size[0])`` to be a multiple of 4
            and ``out_indices=(3, )``. Defaults to 0.
        strategy (str): Which tokens go at each prune point: ``'sta'``,
            ``'random'``, ``'temporal'`` (STA without its semantic factor)
            or ``'semantic'`` (the semantic factor alone). ``'tome'`` is
            refused (see :data:`SWIN_STRATEGIES`). Defaults to ``'sta'``.
        seed (int, optional): Seed of the ``'random'`` strategy: each clip
            draws from its own generator, seeded by ``seed`` and the clip's
            content, so its kept tokens do not depend on the batch or the
            process (see ``STAViT``). Ignored by the other strategies.
            Defaults to None, torch's global RNG.
        *args, **kwargs: Arguments of ``SwinTransformer3D``. An argument
            neither class knows is a ``ValueError`` naming the closest known
            one.
    """

    #: STA's settings, the arguments of :meth:`init_sta`.
    STA_SETTINGS = ('drop_number', 'strategy', 'seed')

    def __init__(self,
                 *args,
                 drop_number: int = 0,
                 strategy: str = 'sta',
                 seed: Optional[int] = None,
                 **kwargs) -> None:
        check_known('STASwin3D', kwargs,
                    init_arguments(SwinTransformer3D) +
                    list(self.STA_SETTINGS))
        super().__init__(*args, **kwargs)
        self.init_sta(drop_number, strategy, seed)

    def init_sta(self,
                 drop_number: int = 0,
                 strategy: str = 'sta',
                 seed: Optional[int] = None,
                 **settings) -> None:
        """Check and set STA's settings on the built (stock) model.

        The stages and outputs are read from the model's own attributes.
        Every check runs before any attribute is set, so a refused setting
        leaves the model as it was. :func:`sta_mmaction.convert_backbone`
        calls it on a live stock ``SwinTransformer3D``.

        Args:
            drop_number (int): ``r``. Defaults to 0.
            strategy (str): See the class doc. Defaults to ``'sta'``.
            seed (int, optional): See the class doc. Defaults to None.
            **settings: None are defined; any key is a ``ValueError``.
        """
        check_known('STASwin3D', settings, self.STA_SETTINGS, what='setting')
        check_strategy_args(
            strategy,
            seed,
            SWIN_STRATEGIES,
            why="ToMe's merged tokens stand for patches from anywhere in "
            'their group, but window attention and patch merging address '
            'every token by one grid position.')
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
        self._clip = DEFAULT_CLIP

    def train(self, mode: bool = True) -> 'STASwin3D':
        """``SwinTransformer3D.train``, returning ``self`` as torch does."""
        super().train(mode)
        return self

    # ------------------------------------------------------------------
    # Schedule and checks
    # ------------------------------------------------------------------
    def _grids(self, clip: Tuple[int, int, int]) -> Tuple[int, list]:
        """(T, H, W) -> slices ``D`` and the (H, W) of stages 1-4."""
        t, h, w = clip
        pt, ph, pw = self.patch_embed.patch_size
        grids = [(_ceil_div(h, ph), _ceil_div(w, pw))]
        for _ in range(3):
            grids.append(tuple(_ceil_div(n, 2) for n in grids[-1]))
        return _ceil_div(t, pt), grids

    def _plan(self, clip: Tuple[int, int, int]) -> List[Dict[str, int]]:
        """The schedule for a (T, H, W) clip; ``ValueError`` if unfit."""
        t, h, w = clip
        d, grids = self._grids(clip)
        pt = self.patch_embed.patch_size[0]
        if d % 4:
            raise ValueError(
                f'STASwin3D with drop_number={self.drop_number} groups 1, 2 '
                'and 4 temporal slices at stages 2, 3 and 4, so the clip '
                f'must give a multiple of 4 slices, but T={t} frames give '
                f'ceil(T / patch_size[0]) = ceil({t} / {pt}) = {d}. Use e.g. '
                f'{8 * pt} or {16 * pt} frames.')
        points = swin_schedule(d, grids[1:], self.drop_number)
        if not _fits(points):
            sizes = [p['candidates'] for p in points]
            raise ValueError(
                f'drop_number={self.drop_number} is too large for a clip of '
                f'(T, H, W) = {(t, h, w)}: the groups at stages 2, 3 and 4 '
                f'would hold {sizes} tokens and STA drops at most half of a '
                'group. The largest allowed drop_number for this clip size '
                f'is {max_swin_drop(d, grids[1:])}.')
        return points

    def _check_input(self, x: Tensor) -> List[Dict[str, int]]:
        if x.dim() != 5:
            raise ValueError(f'STASwin3D expects a (B, C, T, H, W) clip, got '
                             f'a tensor of shape {tuple(x.shape)}.')
        c = x.shape[1]
        if c != self.patch_embed.in_channels:
            raise ValueError(
                f'STASwin3D was built for in_channels='
                f'{self.patch_embed.in_channels}, but got a clip of shape '
                f'(C, T, H, W) = {tuple(x.shape[1:])}.')
        self._clip = tuple(int(n) for n in x.shape[2:])
        return self._plan(self._clip)

    def token_schedule(
            self,
            clip_shape: Optional[Tuple[int, int, int]] = None) -> List[Dict]:
        """The per-point plan of :func:`swin_schedule` for a clip.

        Args:
            clip_shape (tuple[int], optional): ``(T, H, W)``. Defaults to
                None: the last clip seen by ``forward`` (or
                ``forward_pruned``), else 32 x 224 x 224.
        """
        return self._plan(tuple(clip_shape or self._clip))

    def token_counts(
            self,
            clip_shape: Optional[Tuple[int, int, int]] = None) -> List[int]:
        """Tokens the blocks of stages 1, 2, 3 and 4 run on, per clip.

        Per sample. Stage 1 is never pruned; stages 2-4 count the tokens
        kept at their prune point (every block of the stage runs qkv, proj
        and MLP on exactly these). The patch merging into stage 3 (4) runs
        on the carried tokens, ``groups * candidates`` of
        ``token_schedule()[1]`` (``[2]``). For 32 x 224^2 and
        ``r % 16 == 0``: ``[50176, 12544 - 16r, 3136 - 6r, 784 - 1.75r]``,
        with ``3136 - 4r`` and ``784 - 1.5r`` carried.

        Args:
            clip_shape (tuple[int], optional): ``(T, H, W)``. Defaults to
                None: the last clip seen by ``forward`` (or
                ``forward_pruned``), else 32 x 224 x 224.
        """
        clip = tuple(clip_shape or self._clip)
        d, grids = self._grids(clip)
        counts = [d * grids[0][0] * grids[0][1]]
        if self.drop_number == 0:
            return counts + [d * h * w for h, w in grids[1:]]
        return counts + [p['groups'] * p['kept'] for p in self._plan(clip)]

    # ------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> stock feature map, or (B, C', 1, 1, 1)."""
        if self.drop_number == 0:
            self._clip = tuple(int(n) for n in x.shape[2:])
            return super().forward(x)
        return self.forward_pruned(x)[0]

    def forward_pruned(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """(B, C, T, H, W) -> pooled features and kept positions per stage.

        A copy of ``SwinTransformer3D.forward`` from mmaction 1.2.0 with the
        pruning fenced in. Also runs at ``drop_number=0`` (then nothing is
        dropped), which tests the gather/scatter path against stock.

        Returns:
            tuple: ``(B, C', 1, 1, 1)`` mean of the kept, normed stage-4
            tokens, and for stages 2, 3 and 4 the (B, M) positions of the
            kept tokens in the flat time-major ``D*H*W`` grid of the stage.
        """
        # --- STA: validate the clip and plan the schedule ---
        points = self._check_input(x)
        gens = sample_generators(self.strategy, self.seed,
                                 x)  # one generator per clip, or None
        # --- end STA ---
        x = self.patch_embed(x)

        x = self.pos_drop(x)

        # --- STA: stage 1 in full, stages 2-4 on kept tokens ---
        first = self.layers[0]
        x = first(x.contiguous(), do_downsample=False)  # (B, D, H, W, C)
        x = first.downsample(x)  # (B, D, H2, W2, 2C)
        b, d, h, w, c = x.shape
        grid_in = x.reshape(b, d * h * w, c)  # last features, stage input
        tokens = grid_in  # (B, N2, C2) candidates
        pos = torch.arange(d * h * w, device=x.device).expand(b, -1)
        kept = []
        for p, layer in enumerate(self.layers[1:]):
            if p > 0:
                merge = self.layers[p].downsample
                tokens, pos, grid_in, (d, h, w) = self._carry(
                    merge, grid_in, tokens, pos, (d, h, w),
                    points[p - 1]['groups'], points[p]['carried'])
            tokens, pos = self._run_stage(layer, tokens, pos, (d, h, w),
                                          points[p], p == 1, gens)
            kept.append(pos)
        norm_layer = getattr(self, f'norm{self.num_layers - 1}')
        out = norm_layer(tokens).mean(1)  # (B, C'), kept tokens only
        # --- end STA ---
        return out[:, :, None, None, None], kept

    def _run_stage(self, layer, tokens: Tensor, pos: Tensor,
                   dhw: Tuple[int, int, int], point: Dict[str, int],
                   reverse: bool,
                   generator: Generators) -> Tuple[Tensor, Tensor]:
        """Prune the candidates, then run the stage's blocks on the kept."""
        d, h, w = dhw
        window_size, shift_size = get_window_size((d, h, w), layer.window_size,
                                                  layer.shift_size)
        dp, hp, wp = (_ceil_div(n, s) * s for n, s in zip(dhw, window_size))
        attn_mask = compute_mask(dp, hp, wp, window_size, shift_size,
                                 tokens.device)
        tokens, pos, qkv = self._select(layer.blocks[0], tokens, pos, point,
                                        reverse, generator)
        grid = _KeptGrid(pos, dhw)
        for i, blk in enumerate(layer.blocks):
            tokens = block_forward_kept(blk, tokens, grid, attn_mask,
                                        qkv if i == 0 else None)
        return tokens, pos

    def _select(self, blk: SwinTransformerBlock3D, tokens: Tensor,
                pos: Tensor, point: Dict[str, int], reverse: bool,
                generator: Generators) -> Tuple[Tensor, Tensor, Tensor]:
        """STA (or ``strategy``) at a stage's start, with the first block's
        attention keys.

        Returns:
            tuple: kept tokens (B, M, C), their positions (B, M) and their
            qkv (B, M, 3C) for the first block.
        """
        attn = blk.attn
        b, n, c = tokens.shape
        normed = blk.norm1(tokens)  # (B, N, C)
        w_q, w_k, w_v = attn.qkv.weight.chunk(3)  # (C, C) each
        if attn.qkv.bias is None:
            b_q = b_k = b_v = None
        else:
            b_q, b_k, b_v = attn.qkv.bias.chunk(3)
        k = F.linear(normed, w_k, b_k)  # (B, N, C), all candidates
        keys = k.view(b, n, attn.num_heads, -1).mean(2)  # (B, N, C / nH)
        idx = sta_select(
            tokens,
            keys,
            point['groups'],
            point['drop'],
            reverse=reverse,
            strategy=self.strategy,
            generator=generator)  # (B, M)
        tokens = gather_tokens(tokens, idx)  # (B, M, C)
        normed = gather_tokens(normed, idx)  # (B, M, C)
        q = F.linear(normed, w_q, b_q)  # (B, M, C), kept only
        v = F.linear(normed, w_v, b_v)  # (B, M, C), kept only
        qkv = torch.cat([q, gather_tokens(k, idx), v], dim=-1)  # (B, M, 3C)
        return tokens, pos.gather(1, idx), qkv

    @staticmethod
    def _carry(
            merge: PatchMerging, grid_in: Tensor, tokens: Tensor, pos: Tensor,
            dhw: Tuple[int, int, int], groups: int, carried: int
    ) -> Tuple[Tensor, Tensor, Tensor, Tuple[int, int, int]]:
        """Patch merging on the kept set (a copy of ``PatchMerging.forward``).

        The merged 2x2 vectors are gathered for the carried positions only,
        so the norm and the reduction run on those alone.

        Args:
            merge (PatchMerging): The stage's downsample layer.
            grid_in (Tensor): (B, D*H*W, C) the stage input (last features
                of pruned positions, zeros where the carry dropped them).
            tokens (Tensor): (B, M, C) kept tokens after the stage's blocks.
            pos (Tensor): (B, M) their positions.
            dhw (tuple[int]): ``(D, H, W)`` of the stage.
            groups (int): Groups of the stage's prune point.
            carried (int): Merged tokens each group passes on.

        Returns:
            tuple: merged tokens (B, groups*carried, 2C), their positions in
            the merged grid, the next stage's input grid (zeros but for the
            carried tokens) and its ``(D, H/2, W/2)``.
        """
        B, M, C = tokens.shape
        D, H, W = dhw
        x = scatter_tokens(
            grid_in.to(tokens.dtype, copy=True), pos, tokens)  # (B, DHW, C)
        x = x.view(B, D, H, W, C)
        kept = torch.zeros(B, D * H * W, device=x.device)
        kept = kept.scatter(1, pos, torch.ones_like(pos, dtype=kept.dtype))
        kept = kept.view(B, D, H, W)  # 1 at kept positions
        with torch.autocast(device_type=x.device.type, enabled=False):
            act = x.abs().sum(-1, dtype=torch.float32) * kept  # (B, D, H, W)

        # padding
        pad_input = (H % 2 == 1) or (W % 2 == 1)
        if pad_input:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
            kept = F.pad(kept, (0, W % 2, 0, H % 2))
            act = F.pad(act, (0, W % 2, 0, H % 2))

        # --- STA: carry the merged positions with the most kept children ---
        _, _, hp, wp, _ = x.shape
        h2, w2 = hp // 2, wp // 2
        n = D // groups * h2 * w2  # merged positions per group
        children = ((0, 0), (1, 0), (0, 1), (1, 1))  # x0, x1, x2, x3
        count = sum(kept[:, :, i::2, j::2] for i, j in children)
        score = sum(act[:, :, i::2, j::2] for i, j in children)
        order = torch.argsort(
            score.view(B, groups, n), dim=-1, descending=True, stable=True)
        by_count = torch.argsort(
            count.view(B, groups, n).gather(-1, order),
            dim=-1,
            descending=True,
            stable=True)
        top = order.gather(-1, by_count)[..., :carried]  # (B, G, carried)
        top = top.sort(dim=-1).values  # raster order inside a group
        offset = torch.arange(groups, device=x.device).unsqueeze(-1) * n
        new_pos = (top + offset).flatten(1)  # (B, M'), in D x h2 x w2
        d_i = new_pos // (h2 * w2)
        h_i = new_pos // w2 % h2
        w_i = new_pos % w2
        flat = x.reshape(B, D * hp * wp, C)
        x = torch.cat([
            gather_tokens(flat, (d_i * hp + 2 * h_i + i) * wp + 2 * w_i + j)
            for i, j in children
        ], -1)  # (B, M', 4C), as x0, x1, x2, x3
        # --- end STA ---

        x = merge.norm(x)
        x = merge.reduction(x)  # (B, M', 2C)

        # --- STA: the next stage's input grid, for its own carry ---
        grid_next = scatter_tokens(
            x.new_zeros(B, D * h2 * w2, x.shape[-1]), new_pos, x)
        # --- end STA ---
        return x, new_pos, grid_next, (D, h2, w2)
