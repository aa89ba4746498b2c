"""The ``strategy`` and ``seed`` settings shared by the STA backbones."""
from typing import Optional, Sequence

import torch

from ..core import STRATEGIES, validate_strategy


def check_strategy_args(strategy: str,
                        seed: Optional[int],
                        allowed: Sequence[str] = STRATEGIES,
                        why: str = '') -> None:
    """Raise a ``ValueError`` for a strategy or seed a backbone cannot take.

    Args:
        strategy (str): One of :data:`sta_mmaction.core.STRATEGIES`.
        seed (int, optional): Seed of the ``'random'`` strategy, or None.
        allowed (Sequence[str]): The strategies this backbone supports.
            Defaults to all of them.
        why (str): Why the others are refused, appended to the message.
            Defaults to ''.
    """
    validate_strategy(strategy)
    if strategy not in allowed:
        raise ValueError(f'strategy={strategy!r} is not available for this '
                         f'backbone; choose one of {tuple(allowed)}. {why}'
                         .rstrip())
    if seed is not None and (isinstance(seed, bool)
                             or not isinstance(seed, int)):
        raise ValueError(f'seed={seed!r} must be an int or None (None '
                         'draws from torch\'s global RNG).')


class RandomStrategyMixin:
    """The ``'random'`` strategy's own generator, seeded by ``self.seed``.

    The generator is created at the first pruned forward and advanced by
    every forward after it, so a run with the same seed and the same inputs
    keeps the same tokens.
    """

    seed: Optional[int]
    _generator: Optional[torch.Generator]

    def random_generator(self) -> Optional[torch.Generator]:
        """The ``'random'`` strategy's generator; None without a seed."""
        if self.seed is None:
            return None
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def reset_generator(self) -> None:
        """Start the ``'random'`` strategy's draws again from ``seed``."""
        self._generator = None
