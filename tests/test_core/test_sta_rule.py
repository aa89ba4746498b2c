"""The STA rule against an independent, per-token re-statement of it."""
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch

from sta_mmaction.core import (ceil_div, check_drop_number, group_schedule,
                               group_sizes, max_drop_number, prune_layers,
                               semantic_activation, sta_select, token_counts,
                               visits_in_reverse)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def reference_select(x, keys, num_groups, r, reverse=False):
    """One sample, plain Python floats: the rule as the issue words it.

    x: (N, C), keys: (N, c). Returns the kept sequence indices in output
    order. Ties are broken by sequence position.
    """
    x, keys = x.double(), keys.double()
    n_tok = x.shape[0]
    n = n_tok // num_groups
    unit = keys / keys.norm(dim=-1, keepdim=True)
    cos = (unit @ unit.T).tolist()
    act = x.abs().sum(-1).tolist()
    order = list(range(num_groups))
    if reverse:
        order.reverse()
    kept = {}
    src = weights = None
    for step, g in enumerate(order):
        pos = list(range(g * n, (g + 1) * n))
        if step == 0:
            even, odd = pos[0::2], pos[1::2]
            best = {p: max(cos[p][q] for q in odd) for p in even}
            ranked = sorted(even, key=lambda p: (best[p], p))
            kept[g] = odd + ranked[:len(even) - r]
            src, weights = pos, [1.0] * n
            continue
        acc = dict.fromkeys(pos, 0.0)
        for s, w in zip(src, weights):
            logits = [cos[s][p] for p in pos]
            top = max(logits)
            exps = [math.exp(v - top) for v in logits]
            total = sum(exps)
            for p, e in zip(pos, exps):
                acc[p] += w * e / total
        lo = min(act[p] for p in pos)
        hi = max(act[p] for p in pos)
        sem = {p: (act[p] - lo) / (hi - lo) if hi > lo else 0.0 for p in pos}
        score = {p: acc[p] * (1 - sem[p]) for p in pos}
        ranked = sorted(pos, key=lambda p: (score[p], p))[:n - r]
        kept[g] = ranked
        total = sum(acc[p] for p in ranked)
        src, weights = ranked, [acc[p] / total for p in ranked]
    return [p for g in range(num_groups) for p in kept[g]]


@pytest.mark.parametrize('reverse', [False, True])
@pytest.mark.parametrize('r', [1, 5, 8])
def test_selection_matches_reference(reverse, r):
    gen = torch.Generator().manual_seed(r + 10 * reverse)
    b, groups, n = 3, 4, 16
    x = torch.randn(b, groups * n, 12, generator=gen)
    keys = torch.randn(b, groups * n, 6, generator=gen)
    idx = sta_select(x, keys, groups, r, reverse=reverse)
    assert idx.shape == (b, groups * (n - r))
    for i in range(b):
        assert idx[i].tolist() == reference_select(x[i], keys[i], groups, r,
                                                   reverse)


def test_zero_drop_is_identity():
    x = torch.randn(2, 32, 4)
    idx = sta_select(x, x, 4, 0)
    assert torch.equal(idx, torch.arange(32).expand(2, -1))


def test_selection_is_per_sample_and_deterministic():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, 8, generator=gen)
    keys = torch.randn(4, 64, 8, generator=gen)
    both = sta_select(x, keys, 4, 6)
    assert torch.equal(both, sta_select(x, keys, 4, 6))
    for i in range(4):
        alone = sta_select(x[i:i + 1], keys[i:i + 1], 4, 6)
        assert torch.equal(alone[0], both[i])


def test_schedule_and_counts():
    assert prune_layers(12) == (0, 4, 8)
    assert prune_layers(24) == (0, 8, 16)
    assert prune_layers(32) == (0, 10, 21)
    assert group_schedule(8) == (8, 4, 2)
    for r in (0, 32, 48, 64):
        assert token_counts(196, 8, r) == [
            1568, 1568 - 8 * r, 1568 - 12 * r, 1568 - 14 * r
        ]
    assert group_sizes(196, 8, 64) == [196, 2 * (196 - 64), 4 * (196 - 96)]


def test_ceil_div_and_reverse_point():
    assert [ceil_div(a, 4) for a in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    assert [visits_in_reverse(p) for p in range(3)] == [False, True, False]


def test_max_drop_number():
    assert max_drop_number(196, 8) == 98
    check_drop_number(98, 196, 8)
    for tokens, slices in ((49, 8), (16, 4), (196, 4)):
        best = max_drop_number(tokens, slices)
        check_drop_number(best, tokens, slices)
        with pytest.raises(ValueError):
            check_drop_number(best + 1, tokens, slices)


@pytest.mark.parametrize('value, match', [
    (-1, 'drop_number=-1 is negative'),
    (99, 'largest allowed drop_number is 98'),
    (2.5, 'must be an int'),
    (True, 'must be an int'),
])
def test_bad_drop_number(value, match):
    with pytest.raises(ValueError, match=match):
        check_drop_number(value, 196, 8)


@pytest.mark.parametrize('slices', [2, 6, 3])
def test_bad_slices(slices):
    with pytest.raises(ValueError, match=f'= {slices} temporal slices'):
        check_drop_number(8, 196, slices)


def test_select_rejects_oversized_drop():
    x = torch.randn(1, 32, 4)
    with pytest.raises(ValueError, match='at most 4'):
        sta_select(x, x, 4, 5)


@pytest.mark.parametrize('dtype', [None, torch.float16, torch.bfloat16])
def test_constant_clip_is_nan_free(dtype):
    """A constant group has no semantic contrast: 0, never 0 / 0."""
    x = torch.full((2, 64, 8), 3.0)
    keys = torch.ones(2, 64, 8)
    sem = semantic_activation(x, 4)
    assert torch.equal(sem, torch.zeros_like(sem))
    ctx = torch.autocast('cpu', dtype=dtype) if dtype else torch.no_grad()
    with ctx:
        idx = sta_select(x.to(dtype or x.dtype), keys.to(dtype or x.dtype),
                         4, 4)
    assert idx.shape == (2, 48)
    assert int(idx.min()) >= 0 and int(idx.max()) < 64
    # every group keeps distinct tokens of its own
    for g in range(4):
        part = idx[:, g * 12:(g + 1) * 12]
        assert int(part.min()) >= g * 16 and int(part.max()) < (g + 1) * 16
        assert all(len(set(row.tolist())) == 12 for row in part)


def test_core_imports_without_openmmlab():
    """core/ runs with mmengine, mmcv and mmaction made unimportable.

    The package is loaded from its folder, not through ``sta_mmaction``,
    whose ``__init__`` imports mmaction.
    """
    code = f"""
import importlib.abc, importlib.util, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmengine', 'mmcv', 'mmaction'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
core_dir = {osp.join(ROOT, 'sta_mmaction', 'core')!r}
spec = importlib.util.spec_from_file_location(
    'sta_core', core_dir + '/__init__.py',
    submodule_search_locations=[core_dir])
sta = importlib.util.module_from_spec(spec)
sys.modules['sta_core'] = sta
spec.loader.exec_module(sta)
import torch
x = torch.randn(1, 32, 4)
assert sta.sta_select(x, x, 4, 2).shape == (1, 24)
for s in ('random', 'temporal', 'semantic'):  # the baselines too
    assert sta.select_tokens(x, x, 4, 2, strategy=s).shape == (1, 24)
assert sta.swin_plan((8, 64, 64), (2, 4, 4), 16)[0]['kept'] == 48
kept, src, dst = sta.bipartite_match(x, 4, 2)
y, size = sta.merge_tokens(x, torch.ones(1, 32), kept, src, dst)
assert y.shape == (1, 24, 4) and float(size.sum()) == 32
assert not any(m.split('.')[0] in ('mmengine', 'mmcv', 'mmaction')
               for m in sys.modules)
"""
    subprocess.run([sys.executable, '-c', code], check=True)
