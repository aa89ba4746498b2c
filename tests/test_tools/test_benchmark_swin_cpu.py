"""tools/analysis_tools/benchmark_swin_cpu.py: the r=0 time breakdown."""
import importlib.util
import os.path as osp

import pytest
import torch

from sta_mmaction.models import STASwin3D
from ..conftest import ROOT
from ..test_models.test_sta_swin import SMALL, clip


def load_tool():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_swin_cpu.py')
    spec = importlib.util.spec_from_file_location('benchmark_swin_cpu', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_breakdown_parts_add_up_and_bound_the_speed_up():
    tool = load_tool()
    torch.manual_seed(0)
    base = STASwin3D(**SMALL, drop_number=0).eval()
    pruned = STASwin3D(**SMALL, drop_number=24).eval()
    x = clip(b=1)
    part = tool.breakdown(base, pruned, x, repeats=2)
    assert part['fixed'] > 0 and part['per_token'] > 0
    assert part['fixed'] + part['per_token'] < part['total']
    assert part['other'] == pytest.approx(
        part['total'] - part['fixed'] - part['per_token'])
    # kept shares 160/256, 28/64, 7/16 of the per-token time remain
    assert part['per_token'] * 7 / 16 < part['scaled'] < part['per_token']
    assert 1 < part['ideal'] < part['ceiling']
    # the hooks are gone afterwards
    assert not any(m._forward_hooks or m._forward_pre_hooks
                   for m in base.modules())


def test_bad_arguments(monkeypatch):
    tool = load_tool()
    monkeypatch.setattr('sys.argv', ['x', '--repeats', '0'])
    with pytest.raises(ValueError, match='--repeats=0 must be >= 1'):
        tool.parse_args()
    monkeypatch.setattr('sys.argv', ['x', '--breakdown-repeats', '-1'])
    with pytest.raises(ValueError, match='--breakdown-repeats=-1'):
        tool.parse_args()
