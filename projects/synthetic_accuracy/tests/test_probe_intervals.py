"""The refitted linear probe and the interval code, on tiny inputs."""
import numpy as np
import pytest
import torch

from projects.synthetic_accuracy.accuracy.intervals import (mean_interval,
                                                            paired_interval,
                                                            verdict)
from projects.synthetic_accuracy.accuracy.probe import (fit_probe,
                                                        probe_predict)


def _blobs(n, shift, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.eye(3, 8) * shift  # (3, 8)
    return centres[labels] + torch.randn(n, 8, generator=gen), labels


def test_probe_separates_what_is_there_and_not_what_is_not():
    x, y = _blobs(30, 6., 0)
    params = fit_probe(x * 100 + 5, y, 3)  # scale and offset: standardised
    test_x, test_y = _blobs(30, 6., 1)
    assert (probe_predict(params, test_x * 100 + 5) == test_y).all()
    # the same features with the class signal gone: near chance
    noise, _ = _blobs(30, 0., 2)
    lost = fit_probe(noise, y, 3)
    held, _ = _blobs(90, 0., 3)
    acc = (probe_predict(lost, held) == torch.arange(90) % 3).double()
    assert acc.mean() < 0.5
    again = fit_probe(x, y, 3)
    assert all(torch.equal(a, b) for a, b in zip(again, fit_probe(x, y, 3)))


def test_probe_refuses_bad_shapes_and_labels():
    with pytest.raises(ValueError, match=r'\(N, C\) features'):
        fit_probe(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\)'):
        fit_probe(torch.zeros(2, 2), torch.tensor([0, 2]), 2)


def test_mean_interval_brackets_the_mean_and_is_reproducible():
    x = [1.] * 30 + [0.] * 10
    out = mean_interval(x)
    assert out['mean'] == 0.75 and out['n'] == 40
    assert 0.55 < out['low'] < 0.75 < out['high'] < 0.9
    assert mean_interval(x) == out
    assert mean_interval([1.] * 5) == dict(mean=1., low=1., high=1., n=5)
    with pytest.raises(ValueError, match='at least one clip'):
        mean_interval([])


def test_paired_interval_and_verdict():
    a = np.array([1.] * 40)
    b = np.array([1.] * 25 + [0.] * 15)
    d = paired_interval(a, b)
    assert d['mean'] == pytest.approx(15 / 40)
    assert (d['a_only'], d['b_only']) == (15, 0) and d['mcnemar_p'] < 1e-3
    assert verdict(d, 'sta', 'random') == 'sta > random'
    assert verdict(paired_interval(b, a), 'sta', 'random') == 'sta < random'
    same = paired_interval(a, a)
    assert (same['mean'], same['low'], same['high']) == (0, 0, 0)
    assert verdict(same, 'x', 'y') is None
    # five clips, all for A: the percentile interval excludes zero, but
    # McNemar's exact p is 2 / 32, so no winner is named
    few = paired_interval([1.] * 5 + [0.] * 35, [0.] * 40)
    assert few['low'] > 0 and few['mcnemar_p'] == pytest.approx(0.0625)
    assert verdict(few, 'a', 'b') is None
    # shares (not 0/1): the interval alone decides
    shares = paired_interval([0.9] * 20, [0.5 + 0.01 * i for i in range(20)])
    assert shares['mcnemar_p'] is None and verdict(shares, 'a', 'b')
    with pytest.raises(ValueError, match='same clips'):
        paired_interval([1.], [1., 0.])
