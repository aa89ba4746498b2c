"""Settings shared by the STA backbones: names, ``strategy`` and ``seed``."""
import difflib
import inspect
from typing import Iterable, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from ..core import STRATEGIES, clip_generators, validate_strategy


def init_arguments(cls: type) -> List[str]:
    """The named arguments of ``cls.__init__`` (no ``self``, ``*``, ``**``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != 'self' and p.kind not in (
        p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def check_known(owner: str, given: Mapping, accepted: Iterable[str],
                what: str = 'argument') -> None:
    """Raise a ``ValueError`` for the first key of ``given`` not accepted.

    Args:
        owner (str): Who got the key, the start of the message.
        given (Mapping): Names and values that were passed.
        accepted (Iterable[str]): The valid names; the closest is suggested.
        what (str): What a name is. Defaults to ``'argument'``.
    """
    accepted = list(accepted)
    for key, value in given.items():
        if key in accepted:
            continue
        close = difflib.get_close_matches(key, accepted, n=1)
        hint = (f'did you mean {close[0]}?' if close else
                f'the accepted ones are {", ".join(sorted(accepted))}.')
        raise ValueError(
            f'{owner} got an unknown {what} {key}={value!r}; {hint}')


def check_arguments(cls: type, given: Mapping) -> None:
    """Raise a ``ValueError`` for an argument the STA backbone ``cls`` does
    not take: those of its stock base class and its ``STA_SETTINGS``."""
    check_known(cls.__name__, given,
                init_arguments(cls.__bases__[0]) + list(cls.STA_SETTINGS))


def check_flag(name: str, value) -> None:
    """Raise a ``ValueError`` unless the setting ``name`` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f'{name}={value!r} must be True or False.')


def check_strategy_args(strategy: str, seed: Optional[int],
                        allowed: Sequence[str] = STRATEGIES,
                        why: str = '') -> None:
    """Raise a ``ValueError`` for a strategy or seed a backbone cannot take.

    Args:
        strategy (str): One of :data:`sta_mmaction.core.STRATEGIES`.
        seed (int, optional): Seed of the ``'random'`` strategy, or None.
        allowed (Sequence[str]): The strategies the backbone supports.
            Defaults to all of them.
        why (str): Why the others are refused. Defaults to ''.
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


def sample_generators(strategy: str, seed: Optional[int],
                      x: Tensor) -> Optional[List[torch.Generator]]:
    """The ``'random'`` strategy's generators for the clips ``x``.

    One per clip of ``x`` (B, C, T, H, W), from ``seed`` and its content
    (:func:`sta_mmaction.core.clip_generators`), so a clip keeps its tokens
    in any batch. None without a seed (torch's global RNG) or for others.
    """
    if strategy != 'random' or seed is None:
        return None
    return clip_generators(x, seed)
