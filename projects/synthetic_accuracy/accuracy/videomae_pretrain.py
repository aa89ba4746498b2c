"""Miniature VideoMAE pre-training whose encoder is our ViT backbone.

After Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient
Learners for Self-Supervised Video Pre-Training", NeurIPS 2022: tube
masking of about 90% of the tokens, an encoder that sees only the visible
ones, a light decoder that fills the masked positions with a shared mask
token and predicts their per-tube normalised pixels, a mean squared error on
the masked tokens alone. Written for this package from the paper's design;
no code is taken from the VideoMAE release.

The encoder is the ``backbone`` attribute, an ``STAViT`` or MMAction2
``VisionTransformer`` built from its usual config, so a pre-training
checkpoint holds ``backbone.*`` keys under the names the fine-tune
recognizer uses; :func:`encoder_init_cfg` is the ``init_cfg`` that loads
them, strictly, into the fine-tune config's backbone.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmaction.models.backbones.vit_mae import (Block, VisionTransformer,
                                               get_sinusoid_encoding)
from mmaction.registry import MODELS, WEIGHT_INITIALIZERS
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.model.weight_init import update_init_info
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from .masking import masked_per_slice, patch_targets, tube_mask
from sta_mmaction.utils.checkpoint import (CheckpointError, file_sha256,
                                           local_checkpoint_file, short_keys)
from sta_mmaction.utils.checkpoint_io import check_state_dict, strip_module_prefix

#: Backbone keys that pre-training does not train: the fine-tune head's
#: ``fc_norm`` normalises the pooled feature, a step pre-training never
#: takes, so (as VideoMAE fine-tuning does) it starts fresh.
FRESH_KEYS = ('fc_norm.weight', 'fc_norm.bias')


@MODELS.register_module()
class VideoMAEPretrainer(BaseModel):
    """(B, C, T, H, W) clips -> masked-tube reconstruction loss.

    ``backbone`` embeds every patch (``patch_embed`` plus ``pos_embed``),
    keeps the visible tokens of a :func:`~sta_mmaction.core.tube_mask` and
    runs its blocks on them alone; ``encoder_norm`` (pre-training only, as
    VideoMAE's encoder norm, dropped at fine-tuning) closes the encoder.
    The decoder projects the visible tokens to ``decoder_dims``, appends one
    learned mask token per masked position, adds a fixed sine-cosine
    position table to all of them, runs ``decoder_depth`` MMAction2 ViT
    blocks and predicts, for the masked positions, the tube's
    ``tubelet x patch x patch x C`` pixels standardised per tube
    (:func:`~sta_mmaction.core.patch_targets`). The loss is their mean
    squared error, over masked tokens only.

    The backbone's ``fc_norm`` is removed: pre-training never pools, so it
    would stay at its initial values. The checkpoint's ``backbone.*`` keys
    are those of the same backbone built for fine-tuning, less
    :data:`FRESH_KEYS`.

    Args:
        backbone (dict): Config of an ``STAViT`` (at ``drop_number=0``) or a
            ``VisionTransformer``, with ``use_mean_pooling=True`` (the
            default) and ``return_feat_map=False``.
        mask_ratio (float): Share of each temporal slice's positions masked,
            the same positions in every slice. Defaults to 0.9.
        decoder_dims (int): Decoder width. Defaults to 64.
        decoder_depth (int): Decoder blocks. Defaults to 2.
        decoder_heads (int): Decoder attention heads. Defaults to 2.
        normalize_target (bool): Standardise each target tube. Defaults to
            True, as VideoMAE.
        data_preprocessor (dict, optional): Config of an
            ``ActionDataPreprocessor`` (``format_shape='NCTHW'``). Defaults
            to None, mmengine's plain ``BaseDataPreprocessor``.
        init_cfg (dict or list[dict], optional): Initialisation of the
            decoder (the backbone keeps its own). Defaults to Xavier-uniform
            linear layers, as VideoMAE.
    """

    def __init__(self,
                 backbone: Dict,
                 mask_ratio: float = 0.9,
                 decoder_dims: int = 64,
                 decoder_depth: int = 2,
                 decoder_heads: int = 2,
                 normalize_target: bool = True,
                 data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = dict(
                     type='Xavier',
                     layer='Linear',
                     distribution='uniform')) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        with DefaultScope.overwrite_default_scope('mmaction'):
            self.backbone = MODELS.build(backbone)
        _check_encoder(self.backbone)
        sizes = dict(
            decoder_dims=decoder_dims,
            decoder_depth=decoder_depth,
            decoder_heads=decoder_heads)
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name}={value!r} must be an int >= 1.')
        if decoder_dims % decoder_heads:
            raise ValueError(f'decoder_dims={decoder_dims} must be a multiple '
                             f'of decoder_heads={decoder_heads}.')
        enc = self.backbone
        # nothing in pre-training pools, so fc_norm would keep its initial
        # values; fine-tuning initialises it afresh (FRESH_KEYS)
        enc.fc_norm = None
        self.mask_ratio = mask_ratio
        self.normalize_target = normalize_target
        self.tubelet = enc.patch_embed.projection.kernel_size[0]
        self.patch = enc.patch_size
        self.slices = enc.pos_embed.shape[1] // (enc.grid_size[0] *
                                                 enc.grid_size[1])
        self.tokens_per_slice = enc.grid_size[0] * enc.grid_size[1]
        # check the ratio against the grid now, not at the first batch
        masked_per_slice(self.tokens_per_slice, mask_ratio)
        in_ch = enc.patch_embed.projection.in_channels
        self.encoder_norm = nn.LayerNorm(enc.embed_dims, eps=1e-6)
        self.decoder_embed = nn.Linear(enc.embed_dims, decoder_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dims))
        nn.init.trunc_normal_(self.mask_token, std=.02)
        self.register_buffer(
            'decoder_pos_embed',
            get_sinusoid_encoding(enc.pos_embed.shape[1], decoder_dims))
        self.decoder_blocks = nn.ModuleList([
            Block(
                embed_dims=decoder_dims,
                num_heads=decoder_heads,
                mlp_ratio=4.,
                qkv_bias=True,
                norm_cfg=dict(type='LN', eps=1e-6))
            for _ in range(decoder_depth)
        ])
        self.decoder_norm = nn.LayerNorm(decoder_dims, eps=1e-6)
        self.decoder_head = nn.Linear(
            decoder_dims, self.tubelet * self.patch * self.patch * in_ch)

    def predict_masked(self, clips: Tensor, mask: Tensor) -> Tensor:
        """(B, C, T, H, W), (B, N) -> (B, M, D) predictions of masked tubes.

        ``mask`` is True at the masked tokens, ``M`` of them in every clip
        (a :func:`~sta_mmaction.core.tube_mask`); ``D`` is
        ``tubelet * patch * patch * C``. The encoder never sees a masked
        tube's pixels.
        """
        enc = self.backbone
        b = clips.shape[0]
        x = enc.patch_embed(clips)[0] + enc.pos_embed  # (B, N, C)
        c = x.shape[-1]
        x = x[~mask].reshape(b, -1, c)  # (B, N - M, C)
        x = enc.pos_drop(x)
        for blk in enc.blocks:
            x = blk(x)
        x = self.decoder_embed(self.encoder_norm(x))  # (B, N - M, Cd)
        pos = self.decoder_pos_embed.expand(b, -1, -1)  # (B, N, Cd)
        cd = pos.shape[-1]
        visible = x + pos[~mask].reshape(b, -1, cd)  # (B, N - M, Cd)
        masked = self.mask_token + pos[mask].reshape(b, -1, cd)  # (B, M, Cd)
        x = torch.cat([visible, masked], dim=1)  # (B, N, Cd)
        for blk in self.decoder_blocks:
            x = blk(x)
        m = masked.shape[1]
        return self.decoder_head(self.decoder_norm(x[:, -m:]))  # (B, M, D)

    def reconstruct(self, clips: Tensor,
                    mask: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, C, T, H, W), (B, N) -> predictions and targets (B, M, D).

        :meth:`predict_masked`, and the masked tubes' pixel targets
        (:func:`~sta_mmaction.core.patch_targets`).
        """
        pred = self.predict_masked(clips, mask)  # (B, M, D)
        target = patch_targets(clips, self.tubelet, self.patch,
                               self.normalize_target)  # (B, N, D)
        return pred, target[mask].reshape(pred.shape)  # (B, M, D) both

    def as_clips(self, inputs: Tensor) -> Tensor:
        """(B, V, C, T, H, W) or (B, C, T, H, W) -> (B * V, C, T, H, W).

        Views are folded into the batch, as the data preprocessor leaves
        them; a clip of another size than the backbone's is a
        ``ValueError``.
        """
        if inputs.dim() == 6:
            inputs = inputs.flatten(0, 1)  # (B * V, C, T, H, W)
        enc = self.backbone
        side = enc.grid_size[0] * self.patch
        built = (enc.patch_embed.projection.in_channels,
                 self.slices * self.tubelet, side, side)
        if inputs.dim() != 5 or tuple(inputs.shape[1:]) != built:
            raise ValueError(
                f'VideoMAEPretrainer was built for clips (C, T, H, W) = '
                f'{built} (the backbone\'s img_size and num_frames), got '
                f'inputs of shape {tuple(inputs.shape)}.')
        return inputs

    def draw_mask(self,
                  batch: int,
                  generator: Optional[torch.Generator] = None) -> Tensor:
        """(B, N) bool tube mask of this model's grid and ``mask_ratio``.

        Drawn from ``generator``, or torch's global RNG if None.
        """
        return tube_mask(batch, self.slices, self.tokens_per_slice,
                         self.mask_ratio, generator=generator)

    @torch.no_grad()
    def reference_losses(self, clips: Tensor,
                         mask: Tensor) -> Dict[str, float]:
        """(B, C, T, H, W), (B, N) -> MSE of the model and two references.

        All three are on the same masked tubes of the same targets, so they
        compare directly: ``'model'``, this model's loss; ``'zero'``,
        predicting zeros (the data preprocessor's mean colour, or each
        tube's own mean when targets are standardised); ``'visible_mean'``,
        predicting every masked tube as the per-channel mean of the clip's
        visible tubes, which a decoder that learnt nothing of a clip but its
        colour would reach.

        Args:
            clips (Tensor): As :meth:`reconstruct` takes them.
            mask (Tensor): (B, N) bool, True at the masked tokens.
        """
        pred = self.predict_masked(clips, mask)  # (B, M, D)
        b, m, d = pred.shape
        c = self.backbone.patch_embed.projection.in_channels
        every = patch_targets(clips, self.tubelet, self.patch,
                              self.normalize_target)  # (B, N, D)
        target = every[mask].reshape(b, m, d)  # (B, M, D)
        visible = every[~mask].reshape(b, -1, d // c, c)  # (B, N - M, D/C, C)
        colour = visible.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1, C)
        flat = target.reshape(b, m, d // c, c)  # (B, M, D/C, C)
        return dict(
            model=F.mse_loss(pred, target).item(),
            zero=target.pow(2).mean().item(),
            visible_mean=(flat - colour).pow(2).mean().item())

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[Sequence] = None,
                mode: str = 'loss') -> Union[Dict[str, Tensor], Tensor]:
        """(B, V, C, T, H, W) or (B, C, T, H, W) clips -> ``dict(loss=...)``.

        A fresh tube mask is drawn per clip from torch's global RNG (which
        mmengine's ``randomness`` seeds). ``mode='tensor'`` returns the
        (B, M, D) predictions instead; there is nothing to ``'predict'``.

        Args:
            inputs (Tensor): Clips as ``ActionDataPreprocessor`` leaves them
                (views are folded into the batch).
            data_samples (Sequence, optional): Unused (no labels).
                Defaults to None.
            mode (str): ``'loss'`` or ``'tensor'``. Defaults to ``'loss'``.
        """
        if mode not in ('loss', 'tensor'):
            raise ValueError(f"VideoMAEPretrainer: mode={mode!r}; allowed: "
                             "'loss', 'tensor' (pre-training has no "
                             'predictions; set val_cfg=None).')
        inputs = self.as_clips(inputs)  # (B, C, T, H, W)
        mask = self.draw_mask(inputs.shape[0]).to(inputs.device)  # (B, N)
        pred, target = self.reconstruct(inputs, mask)  # (B, M, D)
        if mode == 'tensor':
            return pred
        return dict(loss=F.mse_loss(pred, target))


def _check_encoder(backbone: nn.Module) -> None:
    """Refuse a backbone that is not a plain, unpruned ViT encoder."""
    if not isinstance(backbone, VisionTransformer):
        raise ValueError(
            f'VideoMAEPretrainer: backbone type={type(backbone).__name__}; '
            "allowed: 'STAViT' or 'VisionTransformer' (the ViT whose "
            'backbone.* weights fine-tuning loads).')
    if getattr(backbone, 'drop_number', 0):
        raise ValueError(
            f'VideoMAEPretrainer: backbone drop_number='
            f'{backbone.drop_number}; the encoder runs on the visible '
            'tokens of the tube mask, so it must be 0.')
    if backbone.fc_norm is None or backbone.return_feat_map:
        raise ValueError(
            'VideoMAEPretrainer: the backbone needs use_mean_pooling=True '
            'and return_feat_map=False, the settings the fine-tune '
            '(mean-pooling) recognizer uses, so that the pre-trained keys '
            'are its keys.')


@WEIGHT_INITIALIZERS.register_module(name='PretrainedEncoder')
class PretrainedEncoderInit:
    """Load a pre-training checkpoint's encoder into a backbone, strictly.

    The file is read through mmengine's loaders, which ``sta_mmaction``
    makes safe (:mod:`sta_mmaction.utils.checkpoint`), and its
    ``prefix`` keys are held to :func:`~sta_mmaction.utils.checkpoint_io.
    check_state_dict`, the package's one checkpoint check: every key of the
    backbone but ``fresh`` must be in the file with its shape, the file may
    hold no other ``prefix`` key, and ``fresh`` keys must be absent (they
    keep the initialisation that ran before this one, and are logged).

    Args:
        checkpoint (str): Path or URL of a ``VideoMAEPretrainer``
            checkpoint.
        prefix (str): Prefix of the encoder's keys. Defaults to
            ``'backbone.'``.
        fresh (Sequence[str]): Backbone keys the file must lack. Defaults
            to :data:`FRESH_KEYS`.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: str = 'backbone.',
                 fresh: Sequence[str] = FRESH_KEYS) -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.fresh = tuple(fresh)

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import CheckpointLoader
        source = self.checkpoint
        ckpt = CheckpointLoader.load_checkpoint(source, map_location='cpu')
        state = ckpt.get('state_dict', ckpt)
        state = strip_module_prefix(state, source)
        encoder = {
            k[len(self.prefix):]: v
            for k, v in state.items() if k.startswith(self.prefix)
        }
        if not encoder:
            raise CheckpointError(
                f'{source} holds no {self.prefix}* keys (it has '
                f'{short_keys(list(state))}); it is not a pre-training '
                'checkpoint of VideoMAEPretrainer.')
        unknown = sorted(set(self.fresh) - set(module.state_dict()))
        if unknown:
            raise ValueError(f'fresh={list(self.fresh)}: {unknown} are not '
                             f'keys of {type(module).__name__}.')
        stale = sorted(k for k in self.fresh if k in encoder)
        if stale:
            raise CheckpointError(
                f'{source} holds {stale}, which a pre-training encoder '
                'lacks and fine-tuning initialises afresh; is it a '
                'fine-tuned checkpoint? Use load_from for that.')
        missing = check_state_dict(module, encoder, source, allow_partial=True)
        lacking = sorted(set(missing) - set(self.fresh))
        if lacking:
            raise CheckpointError(
                f'{source} does not fill the encoder (no weights were '
                f'loaded): missing ({len(lacking)}): '
                f'{short_keys([self.prefix + k for k in lacking])}')
        module.load_state_dict(encoder, strict=False)
        local = local_checkpoint_file(source)
        print_log(
            f'Loaded {len(encoder)} {self.prefix}* tensors of {source}' +
            (f' (sha256 {file_sha256(local)[:12]})' if local else '') +
            f' into {type(module).__name__}, every encoder key; newly '
            f'initialised: {", ".join(self.fresh) or "none"}',
            logger='current',
            level=logging.INFO)
        if hasattr(module, '_params_init_info'):
            update_init_info(
                module,
                init_info=f'PretrainedEncoder: loaded from {source}')


def encoder_init_cfg(checkpoint: str) -> List[Dict]:
    """The fine-tune backbone's ``init_cfg`` that loads a pre-trained encoder.

    MMAction2's ViT initialisation first (so the fresh ``fc_norm`` starts
    as in a from-scratch model), then :class:`PretrainedEncoderInit`, which
    overwrites every other tensor from ``checkpoint`` or raises a
    ``ValueError`` naming the keys that do not fit.

    Args:
        checkpoint (str): A ``VideoMAEPretrainer`` checkpoint.
    """
    return [
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
        dict(
            type='mmaction.PretrainedEncoder',
            checkpoint=checkpoint,
            prefix='backbone.',
            fresh=list(FRESH_KEYS))
    ]
