"""A linear probe refitted on pruned features: lost evidence or moved mean?

The fixed head was trained on unpruned features; a reduction that only
shifts the pooled feature (as dropping a biased subset does) loses top-1
with it even when the evidence is still there. A multinomial logistic
regression refitted on the training clips' features *under the same
reduction* tells the two apart: what it cannot recover is lost.
"""
from typing import Tuple

import torch
from torch import Tensor

#: L2 penalty on the weights (features are standardised first).
WEIGHT_DECAY = 1e-3
#: L-BFGS iterations; the problem is convex and small.
MAX_ITER = 100


def fit_probe(features: Tensor, labels: Tensor, num_classes: int,
              weight_decay: float = WEIGHT_DECAY
              ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fit a softmax regression on (N, C) features; returns its parameters.

    The features are standardised with the training mean and standard
    deviation; the fit is deterministic (zero start, full-batch L-BFGS in
    float64).

    Args:
        features (Tensor): (N, C) training features.
        labels (Tensor): (N, ) int64 labels in ``[0, num_classes)``.
        num_classes (int): K.
        weight_decay (float): L2 penalty on the weights. Defaults to
            :data:`WEIGHT_DECAY`.

    Returns:
        tuple[Tensor]: ``mean`` (C, ), ``std`` (C, ), ``weight`` (K, C) and
        ``bias`` (K, ), float64.

    Raises:
        ValueError: Shapes disagree or a label is out of range.
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f'fit_probe needs (N, C) features and (N, ) labels, '
                         f'got {tuple(features.shape)} and '
                         f'{tuple(labels.shape)}.')
    if len(labels) and not 0 <= int(labels.min()) <= int(
            labels.max()) < num_classes:
        raise ValueError(f'labels must lie in [0, {num_classes}), got '
                         f'{int(labels.min())}..{int(labels.max())}.')
    x = features.double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    x = (x - mean) / std  # (N, C)
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64,
                         requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=MAX_ITER,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, labels)
        loss = loss + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return mean, std, weight.detach(), bias.detach()


def probe_predict(params: Tuple[Tensor, Tensor, Tensor, Tensor],
                  features: Tensor) -> Tensor:
    """(N, C) features -> (N, ) predicted labels of a :func:`fit_probe`."""
    mean, std, weight, bias = params
    x = (features.double() - mean) / std
    return (x @ weight.T + bias).argmax(1)
