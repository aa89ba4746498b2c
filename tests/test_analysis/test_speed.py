"""sta_mmaction.analysis.speed and tools/analysis_tools/benchmark.py.

Tiny backbones run every step in seconds; speed itself is measured by the
tool, never asserted by a test.
"""
import importlib.util
import json
import os.path as osp
from unittest import mock

import pytest
import torch
from mmengine.config import Config

from sta_mmaction.analysis.speed import (peak_memory_mb, speed_benchmark,
                                         speed_variants, swin_breakdown,
                                         time_forwards)
from sta_mmaction.models import STASwin3D, STAViT, swin_layers

from ..conftest import ROOT
from ..test_models.test_sta_swin import SMALL as SWIN
from ..test_models.test_sta_swin import clip as swin_clip

VITS = osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py')
TINY_VIT = dict(img_size=64, embed_dims=64, depth=3, num_heads=4)


def load_tool(name):
    """A tool's module, imported from its file (tools/ is no package)."""
    path = osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread, as the tool is run on a shared CPU; restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield 1
    torch.set_num_threads(threads)


def labels(rs, tag=''):
    out = []
    for attention in ('explicit', 'fused'):
        out += [f'STA {attention} r={r}{tag}' for r in rs]
        out += [f'oracle {attention} r={r}{tag}' for r in rs if r]
    return out


def tiny_cfg(**backbone):
    cfg = Config.fromfile(VITS)
    cfg.model.backbone.update(TINY_VIT, **backbone)
    return cfg


@pytest.fixture(scope='module')
def tiny_vit(one_thread):
    return speed_benchmark(tiny_cfg(), (0, 4), amp='bf16', repeats=2,
                           clip_shape=(16, 64, 64))


def test_every_variant_side_by_side(tiny_vit):
    rows = tiny_vit['rows']
    assert [row['variant'] for row in rows] == (
        ['stock'] + labels((0, 4)) + ['stock bf16'] + labels((0, 4), ' bf16'))
    assert all(row['supported'] for row in rows)
    assert {row['precision'] for row in rows[:7]} == {'fp32'}
    assert {row['precision'] for row in rows[7:]} == {'bf16'}
    ms = {row['variant']: row['ms'] for row in rows}
    for row in rows:
        assert row['ms'] > 0 and row['peak_mem_mb'] > 0
        assert row['clips_per_s'] == pytest.approx(1e3 / row['ms'])
        assert len(row['times_s']) == 2
        assert row['speedup_vs_stock'] == pytest.approx(
            ms['stock'] / row['ms'])
        # STA rows against the oracle of the same r, attention, precision
        if row['kind'] == 'sta' and row['drop_number']:
            twin = row['variant'].replace('STA', 'oracle')
            assert row['oracle_ratio'] == pytest.approx(
                row['ms'] / ms[twin])
        else:
            assert row['oracle_ratio'] is None
    assert max(row['speedup_vs_best_r0'] for row in rows
               if row['drop_number'] == 0) == pytest.approx(1)
    gflops = {row['drop_number']: row['gflops'] for row in rows}
    assert gflops[0] > gflops[4]
    assert rows[3]['flops_ratio'] == pytest.approx(gflops[0] / gflops[4])
    assert tiny_vit['clock'] == 'process CPU time'
    assert tiny_vit['shape'] == [1, 3, 16, 64, 64]
    env = tiny_vit['env']
    assert env['threads'] == 1 and env['torch'] == torch.__version__
    assert 'oracle fused r=4' in tiny_vit['compare']
    assert tiny_vit['breakdown'] is None


def test_interleaved_rounds_merge_per_label(one_thread):
    calls = []
    forwards = {k: (lambda x, k=k: calls.append(k)) for k in 'ab'}
    out = time_forwards(forwards, torch.zeros(1), rounds=3, number=2)
    assert set(out) == {'a', 'b'}
    assert [len(m.times) for m in out.values()] == [3, 3]
    # each round: the Timer's 2 warm-up calls, then 2 timed; order b, a
    # on the odd round
    assert calls == list('aaaabbbb' + 'bbbbaaaa' + 'aaaabbbb')


def test_amp_only_and_compile_variants():
    torch.manual_seed(0)
    vit = {(r, a): STAViT(**TINY_VIT, drop_number=r,
                          fused_attention=a == 'fused').eval()
           for r in (0, 4) for a in ('explicit', 'fused')}
    cpu = torch.device('cpu')
    variants = speed_variants(vit[0, 'explicit'], vit, cpu, 'bf16', True,
                              compile=True)
    assert [(v['variant'], v['precision']) for v in variants] == (
        [('stock', 'fp32'), ('stock bf16', 'bf16')] +
        [(label, 'bf16') for label in labels((0, 4), ' bf16')] +
        [('STA fused r=0 bf16 compiled', 'bf16'),
         ('STA fused r=4 bf16 compiled', 'bf16'),
         ('oracle fused r=4 bf16 compiled', 'bf16')])
    assert all(v['forward'] is not None for v in variants)
    only = speed_variants(vit[0, 'explicit'], vit, cpu, compile=[4])
    assert [v['variant'] for v in only if v['compiled']] == [
        'STA fused r=4 compiled', 'oracle fused r=4 compiled']
    swin = {(r, a): STASwin3D(**SWIN, drop_number=r,
                              fused_attention=a == 'fused').eval()
            for r in (0, 16) for a in ('explicit', 'fused')}
    variants = speed_variants(swin[0, 'explicit'], swin, cpu, compile=True)
    assert [v['variant'] for v in variants] == (
        ['stock'] + labels((0, 16)) + ['STA fused r=16 whole-window keys',
                                       'STA path explicit r=0'] +
        ['STA fused r=0 compiled', 'STA fused r=16 compiled',
         'oracle fused r=16 compiled'])
    # the whole-window row times the layout of graphs and accelerators
    packs = []
    init = swin_layers.KeptTiles.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        packs.append(self.packs is not None)

    whole = next(v for v in variants if 'whole-window' in v['variant'])
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad(), mock.patch.object(swin_layers.KeptTiles,
                                            '__init__', spy):
        torch.testing.assert_close(whole['forward'](x), swin[16, 'fused'](x),
                                   atol=1e-5, rtol=0)
    assert packs and not any(packs[:len(packs) // 2])
    assert all(packs[len(packs) // 2:])
    for v in variants[-3:]:  # query tiles: static shapes that compile
        assert v['forward'] is not None and not v['note']


def test_a_compiled_row_is_timed_against_the_compiled_oracle(
        one_thread, monkeypatch):
    """The plumbing, with torch.compile stubbed (a real compile of both
    takes a minute here; tests/test_models/test_fast_paths compiles)."""
    calls = []
    monkeypatch.setattr(torch, 'compile', lambda model, **kw: calls.append(
        (type(model).__name__, model.strategy, kw)) or model)
    result = speed_benchmark(tiny_cfg(), (0, 4), repeats=1, compile=[4],
                             clip_shape=(16, 64, 64))
    assert calls == [('STAViT', strategy, dict(dynamic=False, mode=None))
                     for strategy in ('sta', 'oracle')]
    rows = {row['variant']: row for row in result['rows']}
    row = rows['STA fused r=4 compiled']
    assert row['supported'] and row['compiled'] and row['ms'] > 0
    assert row['oracle_ratio'] == pytest.approx(
        row['ms'] / rows['oracle fused r=4 compiled']['ms'])


def test_pruned_rows_alone_beside_stock(one_thread):
    """Without r=0 (a KeyError once) and with r repeated (one row each)."""
    result = speed_benchmark(tiny_cfg(), (4, 4), repeats=1,
                             clip_shape=(16, 64, 64))
    rows = {row['variant']: row for row in result['rows']}
    assert list(rows) == ['stock', 'STA explicit r=4', 'oracle explicit r=4',
                          'STA fused r=4', 'oracle fused r=4']
    assert rows['STA fused r=4']['flops_ratio'] == pytest.approx(
        rows['stock']['gflops'] / rows['STA fused r=4']['gflops'])


def test_a_merging_strategy_has_no_oracle(one_thread):
    result = speed_benchmark(tiny_cfg(strategy='tome'), (0, 4), repeats=1,
                             clip_shape=(16, 64, 64))
    rows = {row['variant']: row for row in result['rows']}
    for attention in ('explicit', 'fused'):
        oracle = rows[f'oracle {attention} r=4']
        assert not oracle['supported'] and 'merges tokens' in oracle['note']
        assert 'ms' not in oracle
        assert rows[f'STA {attention} r=4']['oracle_ratio'] is None


def test_other_strategies_against_the_same_oracle(one_thread):
    result = speed_benchmark(tiny_cfg(), (4, ), repeats=1,
                             clip_shape=(16, 64, 64),
                             strategies=('vidtldr', 'rlt'))
    rows = {row['variant']: row for row in result['rows']}
    for name in ('vidtldr', 'rlt'):
        for attention in ('explicit', 'fused'):
            row = rows[f'{name} {attention} r=4']
            assert row['supported'] and row['oracle_ratio'] > 0
            assert row['flops_ratio'] == pytest.approx(
                rows['stock']['gflops'] / row['gflops'])
    # each row its own GFLOPs: RLT ranks pixels, STA and vid-TLDR match
    assert rows['rlt fused r=4']['gflops'] < rows['STA fused r=4'][
        'gflops'] < rows['vidtldr fused r=4']['gflops']


@pytest.mark.parametrize('kwargs, match', [
    (dict(repeats=0), '--repeats=0 must be >= 1'),
    (dict(number=0), '--number=0 must be >= 1'),
    (dict(batch_size=0), '--batch-size=0 must be >= 1'),
    (dict(amp_only=True), '--amp-only needs --amp'),
    (dict(amp='fp8'), "amp='fp8' is not supported"),
    (dict(breakdown_repeats=1), '--breakdown-repeats=1: the breakdown'),
    (dict(compile=[16]), '--compile 16: compile only drop numbers that'),
    (dict(clip_shape=(16, 0, 0)), '--clip 16 0 0: give the clip as three'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        speed_benchmark(Config.fromfile(VITS), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_without_cuda_is_refused():
    with pytest.raises(ValueError, match='--device=cuda but CUDA is not'):
        speed_benchmark(Config.fromfile(VITS), device='cuda')


def test_a_stock_config_without_a_hook_is_timed_at_r0_only():
    cfg = Config.fromfile(VITS)
    cfg.model.backbone.type = 'VisionTransformer'
    for key in ('drop_number', 'strategy', 'fused_attention'):
        cfg.model.backbone.pop(key, None)
    with pytest.raises(ValueError, match='nothing prunes it'):
        speed_benchmark(cfg)


def test_fused_attention_needs_a_fraction_of_the_memory():
    """The explicit path holds the (N x N) scores and softmax at once."""
    cfg = dict(img_size=112, embed_dims=48, depth=3, num_heads=4)
    torch.manual_seed(0)
    explicit = STAViT(**cfg).eval()
    fused = STAViT(**cfg, fused_attention=True).eval()
    fused.load_state_dict(explicit.state_dict())
    x = torch.randn(1, 3, 16, 112, 112)  # 8 x 49 = 392 tokens
    mem = peak_memory_mb(explicit, x), peak_memory_mb(fused, x)
    # 4 heads x 392^2 float32 scores: 2.3 MiB, and their softmax
    assert mem[0] > 4.6
    assert mem[1] < mem[0] / 4


@pytest.mark.parametrize('fused', [False, True])
def test_swin_breakdown_parts_add_up_and_bound_the_speed_up(fused):
    torch.manual_seed(0)
    base = STASwin3D(**SWIN, drop_number=0, fused_attention=fused).eval()
    pruned = STASwin3D(**SWIN, drop_number=24).eval()
    part = swin_breakdown(base, pruned, swin_clip(b=1), repeats=2)
    shrinking = part['per_token'] + part['attention']
    assert min(part['fixed'], part['per_token'], part['attention']) > 0
    assert part['fixed'] + shrinking < part['total']
    assert part['other'] == pytest.approx(
        part['total'] - part['fixed'] - shrinking)
    # kept shares 160/256, 28/64, 7/16 of the per-token time remain, and
    # of the attention its scores: full-window queries here (T = N = 32),
    # packed keys
    assert shrinking * 7 / 16 < part['scaled'] < shrinking
    # a tile is a window here (T = N): packing saves nothing
    assert part['scores'] == [1.0, 1.0, 1.0]
    # windows of 98 at stage 2: query tiles of 32, keys packed
    tiled = dict(SWIN, window_size=(2, 7, 7))
    base = STASwin3D(**tiled, drop_number=0, fused_attention=fused).eval()
    pruned = STASwin3D(**tiled, drop_number=24).eval()
    packed = swin_breakdown(base, pruned, swin_clip(b=1), repeats=1)
    with swin_layers.whole_window_keys():  # the query tiles' share only
        whole = swin_breakdown(base, pruned, swin_clip(b=1), repeats=1)
    assert whole['scores'][0] == 12 * 32 / (8 * 98)  # query_tiles(160, 8, 98)
    assert packed['scores'][0] < whole['scores'][0]
    assert all(0 < p <= w <= 1 for p, w in zip(packed['scores'],
                                               whole['scores']))
    assert 1 < part['ideal'] < part['ceiling']
    # the labelling hooks are gone afterwards
    assert not any(m._forward_hooks or m._forward_pre_hooks
                   for m in base.modules())
    with pytest.raises(ValueError, match='--breakdown-repeats=0 must be'):
        swin_breakdown(base, pruned, swin_clip(b=1), repeats=0)


def test_compiled_rows_carry_their_difference_from_eager(
        tmp_path, one_thread, monkeypatch):
    """A compiled row says how far its graph is from eager (the whole-window
    keys of the graph against eager's packed ones); AOT autograd stands in
    for inductor, whose Swin build is a test of its own."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, 'compile', lambda model, **kwargs: compile_(
        model, backend='aot_eager', dynamic=False))
    tool = load_tool('benchmark')
    result = tool.main(['--model', 'swin-t', '--tiny', '--repeats', '1',
                        '--breakdown-repeats', '0', '--threads', '1',
                        '--compile', '16', '--out-dir', str(tmp_path)])
    rows = {row['variant']: row for row in result['rows']}
    for name in ('STA fused r=16 compiled', 'oracle fused r=16 compiled'):
        diff = rows[name]['compiled_max_abs_diff']
        assert 0 <= diff < 1e-5
        assert f'max |compiled - eager| {diff:.1e}' in rows[name]['note']
    assert 'compiled_max_abs_diff' not in rows['STA fused r=16']


def test_the_tool_runs_tiny(tmp_path, one_thread):
    tool = load_tool('benchmark')
    result = tool.main(['--model', 'swin-t', '--tiny', '--repeats', '1',
                        '--breakdown-repeats', '1', '--threads', '1',
                        '--out-dir', str(tmp_path)])
    assert result['backbone'] == 'STASwin3D'
    assert [row['variant'] for row in result['rows']] == (
        ['stock'] + labels((0, 16)) + ['STA fused r=16 whole-window keys',
                                       'STA path explicit r=0'])
    assert set(result['breakdown']) == {'explicit', 'fused'}
    data = json.loads((tmp_path / 'swin-t.json').read_text())
    assert data['shape'] == [1, 3, 8, 64, 64] and data['model'] == 'swin-t'
    assert data['rows'] == json.loads(json.dumps(result['rows']))
    with pytest.raises(ValueError, match='--amp-only needs --amp'):
        tool.main(['--model', 'vit-s', '--tiny', '--amp-only'])
    with pytest.raises(ValueError, match='not both or neither'):
        tool.main([])
    with pytest.raises(ValueError, match='--threads=0 must be >= 1'):
        tool.main(['--model', 'vit-s', '--threads', '0'])


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None
        for m in ('onnx', 'onnxscript', 'onnxruntime')),
    reason='the deploy extra is not installed (pip install -e .[deploy])')
def test_onnxruntime_row_runs_the_exported_backbone():
    from sta_mmaction.analysis.speed import runtime_variants
    torch.manual_seed(0)
    model = STAViT(**TINY_VIT, num_frames=8).eval()
    clip = torch.randn(1, 3, 8, 64, 64)  # traced on 2, run on 1
    [row] = runtime_variants('onnxruntime', 'CPUExecutionProvider',
                             {0: model}, clip)
    assert (row['variant'], row['kind']) == ('onnxruntime r=0', 'onnxruntime')
    with torch.no_grad():
        want = model(clip)
    assert torch.allclose(torch.from_numpy(row['forward'](clip)[0]), want,
                          atol=1e-5)
    with pytest.raises(ValueError, match="--runtime='tvm' is not supported"):
        runtime_variants('tvm', 'CPUExecutionProvider', {0: model}, clip)
