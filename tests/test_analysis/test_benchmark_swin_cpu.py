"""The Swin benchmark: variants of the tool, the r=0 time breakdown."""
import pytest
import torch

from sta_mmaction.analysis.benchmark import swin_breakdown
from sta_mmaction.models import STASwin3D, sta_swin, swin_layers

from ..test_models.test_sta_swin import SMALL, clip
from .test_benchmark import labels, load_tool, one_thread  # noqa: F401


@pytest.mark.parametrize('fused, clock', [(False, 'wall'), (True, 'cpu')])
def test_breakdown_parts_add_up_and_bound_the_speed_up(fused, clock):
    torch.manual_seed(0)
    base = STASwin3D(**SMALL, drop_number=0, fused_attention=fused).eval()
    pruned = STASwin3D(**SMALL, drop_number=24).eval()
    x = clip(b=1)
    part = swin_breakdown(base, pruned, x, repeats=2, clock=clock)
    assert part['fixed'] > 0 and part['per_token'] > 0
    assert part['fixed'] + part['per_token'] < part['total']
    assert part['other'] == pytest.approx(
        part['total'] - part['fixed'] - part['per_token'])
    # kept shares 160/256, 28/64, 7/16 of the per-token time remain
    assert part['per_token'] * 7 / 16 < part['scaled'] < part['per_token']
    assert 1 < part['ideal'] < part['ceiling']
    # the hooks and the timed functions are gone afterwards
    assert not any(m._forward_hooks or m._forward_pre_hooks
                   for m in base.modules())
    assert sta_swin.layer_forward_fused is swin_layers.layer_forward_fused
    assert not hasattr(swin_layers.window_attention_core, '__wrapped__')


def test_tiny_run_of_the_tool(tmp_path, one_thread):  # noqa: F811
    result = load_tool('benchmark_swin_cpu').main([
        '--tiny', '--warmup', '0', '--repeats', '1', '--breakdown-repeats',
        '1', '--threads',
        str(one_thread), '--out-dir',
        str(tmp_path)
    ])
    assert result['backbone'] == 'STASwin3D'
    assert [row['variant'] for row in result['rows']] == (
        ['stock'] + labels((0, 16)) + ['STA path explicit r=0'])
    assert (tmp_path / 'swin-t-cpu.json').is_file()
    assert (tmp_path / 'swin-t-cpu.png').is_file()
    assert set(result['breakdown']) == {'explicit', 'fused'}
    for part in result['breakdown'].values():
        assert 1 < part['ideal'] < part['ceiling']
    [target] = result['targets']  # reported, no fixed target
    assert target['check'] == 'fused r=16 over fused r=0 (fp32)'
    assert target['value'] > 0 and target['passed'] is None
    assert 'Amdahl ideal' in target['target']
    assert 'Amdahl at r=16' in result['text']
    assert 'r=0 forward' in result['text'] and 'of process CPU time' in \
        result['text']


def test_bad_arguments():
    tool = load_tool('benchmark_swin_cpu')
    with pytest.raises(ValueError, match='--repeats=0 must be >= 1'):
        tool.main(['--repeats', '0'])
    with pytest.raises(ValueError, match='--breakdown-repeats=-1'):
        tool.main(['--breakdown-repeats', '-1'])
    model = STASwin3D(**SMALL)
    with pytest.raises(ValueError, match='--breakdown-repeats=0 must be'):
        swin_breakdown(model, model, clip(b=1), 0)
    with pytest.raises(ValueError, match="clock='gpu'"):
        swin_breakdown(model, model, clip(b=1), 1, clock='gpu')
