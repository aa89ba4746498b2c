"""sta_mmaction.analysis.benchmark: the Swin r=0 time breakdown (Amdahl)."""
import pytest
import torch

from sta_mmaction.analysis.benchmark import swin_breakdown, swin_cpu_benchmark
from sta_mmaction.models import STASwin3D
from ..test_models.test_sta_swin import SMALL, clip


def test_breakdown_parts_add_up_and_bound_the_speed_up():
    torch.manual_seed(0)
    base = STASwin3D(**SMALL, drop_number=0).eval()
    pruned = STASwin3D(**SMALL, drop_number=24).eval()
    x = clip(b=1)
    part = swin_breakdown(base, pruned, x, repeats=2)
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


def test_bad_arguments():
    with pytest.raises(ValueError, match='--repeats=0 must be >= 1'):
        swin_cpu_benchmark(repeats=0)
    with pytest.raises(ValueError, match='--breakdown-repeats=-1'):
        swin_cpu_benchmark(breakdown_repeats=-1)
