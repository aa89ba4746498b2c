"""Intervals over test clips: a mean's, and a paired difference's.

Percentile bootstrap over clips (Efron and Tibshirani, "An Introduction to
the Bootstrap", 1993, ch. 13): the clips are resampled with replacement and
the statistic recomputed. A paired difference resamples the same clips for
both arms, so it measures how much two strategies differ *on the same
clips*, which is the question "does A beat B here". For 0/1 outcomes
(top-1) the exact McNemar test on the discordant clips is computed too,
since a percentile interval is too narrow when few clips differ. A
comparison names a winner only when its interval excludes zero and, for
0/1 outcomes, McNemar's p is under 0.05 (:func:`verdict`).
"""
from typing import Dict, Optional, Sequence

import numpy as np
from scipy.stats import binomtest

#: Bootstrap resamples and the two-sided level of every interval.
RESAMPLES = 2000
LEVEL = 0.95


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))  # (R, n)


def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError('an interval needs at least one clip, got none.')
    return x


def mean_interval(values: Sequence[float], resamples: int = RESAMPLES,
                  level: float = LEVEL, seed: int = 0) -> Dict[str, float]:
    """The mean over clips and its percentile-bootstrap interval.

    Args:
        values (Sequence[float]): One value per clip (0/1 for top-1).
        resamples (int): Bootstrap resamples. Defaults to
            :data:`RESAMPLES`.
        level (float): Two-sided level. Defaults to :data:`LEVEL`.
        seed (int): Seed of the resampling. Defaults to 0.

    Returns:
        dict: ``mean``, ``low``, ``high`` and ``n`` (clips).
    """
    x = _clean(values)
    means = x[_indices(len(x), resamples, seed)].mean(1)  # (R, )
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return dict(mean=float(x.mean()), low=float(low), high=float(high),
                n=int(len(x)))


def paired_interval(a: Sequence[float], b: Sequence[float],
                    resamples: int = RESAMPLES, level: float = LEVEL,
                    seed: int = 0) -> Dict[str, float]:
    """Mean of ``a - b`` over the same clips, with its paired interval.

    Args:
        a (Sequence[float]): One value per clip under strategy A.
        b (Sequence[float]): The same clips, in the same order, under B.
        resamples (int): As for :func:`mean_interval`.
        level (float): As for :func:`mean_interval`.
        seed (int): As for :func:`mean_interval`.

    Returns:
        dict: ``mean`` (A minus B), ``low``, ``high``, ``n``; for 0/1
        values also ``a_only`` / ``b_only`` (clips where only A, only B,
        scores 1) and ``mcnemar_p`` (two-sided exact McNemar), else None.

    Raises:
        ValueError: ``a`` and ``b`` hold different numbers of clips.
    """
    x, y = _clean(a), _clean(b)
    if x.shape != y.shape:
        raise ValueError(f'paired_interval needs the same clips for both, '
                         f'got {len(x)} and {len(y)} values.')
    out = mean_interval(x - y, resamples, level, seed)
    out.update(a_only=None, b_only=None, mcnemar_p=None)
    if np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all():
        a_only = int(((x == 1) & (y == 0)).sum())
        b_only = int(((x == 0) & (y == 1)).sum())
        p = 1.0 if a_only + b_only == 0 else binomtest(
            a_only, a_only + b_only, 0.5).pvalue
        out.update(a_only=a_only, b_only=b_only, mcnemar_p=float(p))
    return out


def verdict(diff: Dict[str, float], a: str, b: str) -> Optional[str]:
    """``'a > b'``, ``'a < b'``, or None when the two are not separated.

    Separated: the interval excludes zero and, where there is one,
    McNemar's p is under ``1 - LEVEL``.
    """
    p = diff.get('mcnemar_p')
    if p is not None and not p < 1 - LEVEL:
        return None
    if diff['low'] > 0:
        return f'{a} > {b}'
    if diff['high'] < 0:
        return f'{a} < {b}'
    return None
