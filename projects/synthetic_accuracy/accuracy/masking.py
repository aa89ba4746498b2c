"""VideoMAE's tube masking, in plain PyTorch.

After Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient
Learners for Self-Supervised Video Pre-Training", NeurIPS 2022: one random
set of spatial positions is masked and the same set in every temporal slice,
so that a masked patch cannot be recovered by copying it from the next
slice.
"""
from typing import Optional

import torch
from torch import Tensor


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name}={value!r} must be an int >= 1.')


def masked_per_slice(tokens_per_slice: int, ratio: float) -> int:
    """``round(ratio * tokens_per_slice)``, checked to mask some, not all.

    Args:
        tokens_per_slice (int): Spatial positions in one temporal slice.
        ratio (float): Share of the positions to mask, in (0, 1).

    Raises:
        ValueError: ``ratio`` is outside (0, 1), or rounds to masking no
            position or every position of a slice.
    """
    _positive_int('tokens_per_slice', tokens_per_slice)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or \
            not 0 < ratio < 1:
        raise ValueError(f'mask ratio={ratio!r} must be a float in (0, 1).')
    masked = round(ratio * tokens_per_slice)
    if not 0 < masked < tokens_per_slice:
        raise ValueError(
            f'mask ratio={ratio} masks {masked} of {tokens_per_slice} '
            'positions per slice; it must mask at least one and leave at '
            f'least one visible (ratio in ({0.5 / tokens_per_slice:.3f}, '
            f'{1 - 0.5 / tokens_per_slice:.3f}) for this grid).')
    return masked


def tube_mask(batch: int,
              slices: int,
              tokens_per_slice: int,
              ratio: float = 0.9,
              generator: Optional[torch.Generator] = None,
              device: Optional[torch.device] = None) -> Tensor:
    """(B, T0 * P) bool mask, True where a token is masked, whole tubes.

    Each sample masks ``round(ratio * P)`` of the ``P`` spatial positions,
    drawn uniformly without replacement and independently per sample, and
    the same positions in each of the ``T0`` slices. The tokens are in the
    time-major order of the ViT's patch embedding (index ``t * P + p``).

    Args:
        batch (int): B.
        slices (int): T0, temporal slices (frames / tubelet size).
        tokens_per_slice (int): P, spatial positions per slice.
        ratio (float): Share of each slice to mask. Defaults to 0.9, as
            VideoMAE.
        generator (torch.Generator, optional): Source of the draws.
            Defaults to None, torch's global RNG.
        device (torch.device, optional): Device of the mask. Defaults to
            None, the generator's device (or the CPU).

    Raises:
        ValueError: A size is not a positive int, or see
            :func:`masked_per_slice`.
    """
    _positive_int('batch', batch)
    _positive_int('slices', slices)
    masked = masked_per_slice(tokens_per_slice, ratio)
    if device is None:
        device = generator.device if generator is not None else 'cpu'
    noise = torch.rand(
        batch, tokens_per_slice, generator=generator,
        device=device)  # (B, P)
    # the ranks of uniform noise are a uniform permutation per sample
    ranks = noise.argsort(1).argsort(1)  # (B, P)
    per_slice = ranks < masked  # (B, P)
    return per_slice.repeat(1, slices)  # (B, T0 * P)


def patch_targets(clips: Tensor,
                  tubelet: int,
                  patch: int,
                  normalize: bool = True,
                  eps: float = 1e-6) -> Tensor:
    """(B, C, T, H, W) -> (B, N, tubelet * patch * patch * C) pixel targets.

    The tokens are in the patch embedding's time-major order; a token's
    values are its tube's pixels, channel last. With ``normalize`` every
    tube is standardised per channel over its own pixels (VideoMAE's
    ``normlize_target``, unbiased variance). That standardisation cancels
    any per-channel affine map, so the clips may be given as the data
    preprocessor leaves them (mean/std normalised) or as raw pixels: the
    targets differ only by where ``eps`` falls.

    Args:
        clips (Tensor): (B, C, T, H, W), with T a multiple of ``tubelet``
            and H, W of ``patch``.
        tubelet (int): Frames per token.
        patch (int): Pixels per token side.
        normalize (bool): Standardise each tube. Defaults to True.
        eps (float): Added to the variance. Defaults to 1e-6, as VideoMAE.

    Raises:
        ValueError: ``clips`` is not 5-D or does not tile into tubes.
    """
    if clips.dim() != 5:
        raise ValueError('patch_targets expects (B, C, T, H, W) clips, got '
                         f'shape {tuple(clips.shape)}.')
    b, c, t, h, w = clips.shape
    if t % tubelet or h % patch or w % patch:
        raise ValueError(
            f'clips of (T, H, W) = {(t, h, w)} do not tile into tubes of '
            f'tubelet={tubelet} x patch={patch} x {patch}.')
    x = clips.reshape(b, c, t // tubelet, tubelet, h // patch, patch,
                      w // patch, patch)  # (B, C, T0, t, h, p, w, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, T0, h, w, t, p, p, C)
    x = x.reshape(b, -1, tubelet * patch * patch, c)  # (B, N, t*p*p, C)
    if normalize:
        mean = x.mean(dim=-2, keepdim=True)  # (B, N, 1, C)
        var = x.var(dim=-2, unbiased=True, keepdim=True)  # (B, N, 1, C)
        x = (x - mean) / (var + eps).sqrt()
    return x.flatten(2)  # (B, N, t*p*p*C)
