"""sta_mmaction.analysis.benchmark: every variant side by side, targets.

The tiny mode (``tiny=True``, ``--tiny``) runs every step of the benchmark
in seconds; speed itself is measured by the tool, never by a test.
"""
import copy
import importlib.util
import json
import os.path as osp
import shlex
import subprocess

import pytest
import torch
from mmengine.config import Config

from sta_mmaction.analysis.benchmark import (model_config, peak_memory_mb,
                                             run_speed_benchmark,
                                             speed_benchmark, speed_targets,
                                             speed_variants, targets_table)
from sta_mmaction.models import STASwin3D, STAViT

from ..conftest import ROOT
from ..test_models.test_sta_swin import SMALL as SWIN

VITS = osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py')


def load_tool(name):
    """A tool's module, imported from its file (tools/ is no package)."""
    path = osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread, as the benchmark is run (several threads on a
    loaded machine wait for each other), restored afterwards."""
    threads = torch.get_num_threads()
    yield 1
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def tiny_vit(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp('bench')
    return run_speed_benchmark(
        VITS, (0, 4),
        tiny=True,
        out_dir=str(out),
        threads=one_thread,
        amp='bf16',
        warmup=0,
        repeats=1)


def labels(rs, tag=''):
    out = []
    for attention in ('explicit', 'fused'):
        out += [f'STA {attention} r={r}{tag}' for r in rs]
        out += [f'oracle {attention} r={r}{tag}' for r in rs if r]
    return out


def test_tiny_run_has_every_variant_json_and_png(tiny_vit):
    rows = tiny_vit['rows']
    assert [row['variant'] for row in rows] == (
        ['stock'] + labels((0, 4)) + ['stock bf16'] + labels((0, 4), ' bf16'))
    assert all(row['supported'] for row in rows)
    assert {row['precision'] for row in rows[:7]} == {'fp32'}
    assert {row['precision'] for row in rows[7:]} == {'bf16'}
    for row in rows:
        assert row['latency_ms'] > 0 and row['cpu_ms'] > 0
        assert row['peak_mem_mb'] > 0
        assert len(row['times_s']) == 1
        # STA rows against their oracle, only they
        assert (row['oracle_ratio'] is not None) == (
            row['kind'] == 'sta' and row['drop_number'] > 0)
    stock = rows[0]
    assert stock['speedup_vs_stock'] == 1
    assert max(row['speedup_vs_best_unpruned'] for row in rows
               if row['drop_number'] == 0) == 1
    gflops = {row['drop_number']: row['gflops'] for row in rows}
    assert gflops[0] > gflops[4]
    data = json.loads(open(tiny_vit['json']).read())
    assert data['rows'][1]['variant'] == 'STA explicit r=0'
    assert data['tiny'] and data['amp'] == 'bf16'
    assert data['drop_numbers'] == [0, 4] and len(data['load']) == 2
    assert data['shape'] == [1, 3, 16, 64, 64]
    assert open(tiny_vit['png'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    assert 'STA fused r=4 bf16' in tiny_vit['text']


def test_tiny_run_checks_every_target(tiny_vit):
    targets = tiny_vit['targets']
    assert [t['check'] for t in targets] == [
        'STA r=4 / oracle (explicit, fp32)', 'STA r=4 / oracle (fused, fp32)',
        'fused r=4 bf16 over stock fp32', 'fused r=4 over fused r=0 (fp32)',
        'peak memory fused r=0 / explicit r=0 (fp32)'
    ]
    for t in targets:
        assert t['value'] > 0 and t['value_cpu'] > 0
        assert t['passed'] in (True, False)
    assert 'peak memory fused r=0' in targets_table(targets)


def with_times(result, ms):
    """A copy of the result whose rows took these ms, on both clocks."""
    result = copy.deepcopy(result)
    for row in result['rows']:
        if row['variant'] in ms:
            row['latency_ms'] = row['cpu_ms'] = ms[row['variant']]
    return result


def test_targets_pass_and_fail_on_the_numbers(tiny_vit):
    rows = {row['variant']: row for row in tiny_vit['rows']}
    assert tiny_vit['clock'] == 'cpu'  # one thread
    near = with_times(
        tiny_vit, {
            'STA explicit r=4': 102.,
            'oracle explicit r=4': 100.,
            'STA fused r=4': 105.,
            'oracle fused r=4': 100.,
            'stock': 800.,
            'STA fused r=0': 300.,
            'STA fused r=4 bf16': 110.,
        })
    checks = {t['check']: t for t in speed_targets(near)}
    assert checks['STA r=4 / oracle (explicit, fp32)']['passed'] is True
    fused = checks['STA r=4 / oracle (fused, fp32)']
    assert fused['value'] == pytest.approx(1.05) and fused['passed'] is False
    bf16 = checks['fused r=4 bf16 over stock fp32']
    assert bf16['value'] == pytest.approx(800 / 110) and bf16['passed']
    gain = checks['fused r=4 over fused r=0 (fp32)']
    assert gain['value'] == pytest.approx(300 / 105)
    flops = rows['STA fused r=4']['flops_ratio']
    assert gain['passed'] == (300 / 105 >= flops)
    slow = with_times(near, {'STA fused r=4 bf16': 200.})
    checks = {t['check']: t for t in speed_targets(slow)}
    assert checks['fused r=4 bf16 over stock fp32']['passed'] is False
    # judged on the clock the run names, the other one shown beside it
    slow['rows'][0]['latency_ms'] = 1600.
    slow['clock'] = 'wall'
    checks = {t['check']: t for t in speed_targets(slow)}
    bf16 = checks['fused r=4 bf16 over stock fp32']
    assert bf16['value'] == bf16['value_wall'] == pytest.approx(8.)
    assert bf16['value_cpu'] == pytest.approx(4.) and bf16['passed']


def test_amp_only_and_compile_variants():
    torch.manual_seed(0)
    vit = {(r, a): STAViT(
        img_size=64, embed_dims=48, depth=3, num_heads=4, drop_number=r,
        fused_attention=a == 'fused').eval()
           for r in (0, 4) for a in ('explicit', 'fused')}
    cpu = torch.device('cpu')
    variants = speed_variants(vit[0, 'explicit'], vit, cpu, 'bf16', True,
                              compile=True)
    assert [(v['variant'], v['precision']) for v in variants] == (
        [('stock', 'fp32'), ('stock bf16', 'bf16')] +
        [(label, 'bf16') for label in labels((0, 4), ' bf16')] +
        [('STA fused r=0 bf16 compiled', 'bf16'),
         ('STA fused r=4 bf16 compiled', 'bf16')])
    assert all(v['forward'] is not None for v in variants)
    swin = {(r, a): STASwin3D(**SWIN, drop_number=r,
                              fused_attention=a == 'fused').eval()
            for r in (0, 16) for a in ('explicit', 'fused')}
    variants = speed_variants(swin[0, 'explicit'], swin, cpu, compile=True)
    assert [v['variant'] for v in variants] == (
        ['stock'] + labels((0, 16)) + ['STA path explicit r=0'] +
        ['STA fused r=0 compiled', 'STA fused r=16 compiled'])
    for v in variants[-2:]:  # inductor cannot lower the kept-token windows
        assert v['forward'] is None and 'not supported' in v['note']


def test_a_merging_strategy_has_no_oracle_rows(tmp_path, one_thread):
    result = run_speed_benchmark(
        VITS, (0, 4),
        tiny=True,
        out_dir=str(tmp_path),
        threads=one_thread,
        warmup=0,
        repeats=1,
        cfg_options={'model.backbone.strategy': 'tome'})
    rows = {row['variant']: row for row in result['rows']}
    for attention in ('explicit', 'fused'):
        oracle = rows[f'oracle {attention} r=4']
        assert not oracle['supported'] and 'merges tokens' in oracle['note']
        assert rows[f'STA {attention} r=4']['oracle_ratio'] is None
    [explicit, fused] = result['targets'][:2]
    assert explicit['value'] is None and explicit['passed'] is None


@pytest.mark.parametrize('kwargs, match', [
    (dict(repeats=0), '--repeats=0 must be >= 1'),
    (dict(warmup=-1), '--warmup=-1 must be >= 0'),
    (dict(batch_size=0), '--batch-size=0 must be >= 1'),
    (dict(amp_only=True), '--amp-only needs --amp'),
    (dict(amp='fp8'), "amp='fp8' is not supported"),
    (dict(breakdown_repeats=1), '--breakdown-repeats=1: the breakdown'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        speed_benchmark(Config.fromfile(VITS), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_without_cuda_is_refused():
    with pytest.raises(ValueError, match='--device=cuda but CUDA is not'):
        speed_benchmark(Config.fromfile(VITS), device='cuda')


def test_bad_tool_settings():
    with pytest.raises(ValueError, match='--threads=0 must be >= 1'):
        run_speed_benchmark(VITS, threads=0)
    with pytest.raises(ValueError, match="--model='vit-z' is not known"):
        model_config('vit-z')
    with pytest.raises(ValueError, match='not both or neither'):
        model_config('vit-s', VITS)


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


def test_the_tool_runs_tiny(tmp_path, one_thread):
    tool = load_tool('benchmark')
    result = tool.main([
        '--model', 'vit-s', '--tiny', '--device', 'cpu', '--drop-numbers',
        '0', '4', '--warmup', '0', '--repeats', '1', '--threads',
        str(one_thread), '--out-dir',
        str(tmp_path)
    ])
    assert [row['variant'] for row in result['rows']
            ] == ['stock'] + labels((0, 4))
    assert result['json'] == str(tmp_path / 'vit-s.json')
    assert (tmp_path / 'vit-s.png').is_file()
    with pytest.raises(ValueError, match='--amp-only needs --amp'):
        tool.main(['--model', 'vit-s', '--tiny', '--amp-only'])


GPU_SCRIPT = osp.join(ROOT, 'tools', 'analysis_tools', 'gpu_benchmark.sh')


def script_calls(out, *flags):
    """The benchmark.py argument lists that gpu_benchmark.sh would run."""
    proc = subprocess.run(['bash', GPU_SCRIPT, out, '--dry-run', *flags],
                          capture_output=True,
                          text=True,
                          check=True)
    calls = [shlex.split(line) for line in proc.stdout.splitlines()]
    assert all(call[1].endswith('benchmark.py') for call in calls)
    return [call[2:] for call in calls]


def test_gpu_script_runs_the_issue_settings(tmp_path):
    assert subprocess.run(['bash', '-n', GPU_SCRIPT]).returncode == 0
    tool = load_tool('benchmark')
    calls = [tool.parse_args(argv) for argv in script_calls(str(tmp_path))]
    assert [a.model for a in calls] == ['vit-b', 'vit-l', 'swin-b']
    for args in calls:
        assert (args.device, args.batch_size, args.amp, args.amp_only,
                args.out_dir) == ('cuda', 32, 'bf16', True, str(tmp_path))
    assert [a.drop_numbers
            for a in calls] == [[0, 32, 48, 64]] * 2 + [[0, 320]]
    assert [(a.warmup, a.repeats) for a in calls] == [(50, 30), (20, 30),
                                                      (20, 30)]
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_gpu_script_calls_run_tiny_on_the_cpu(tmp_path, one_thread):
    """The script's own ViT call in its --tiny form runs (ViT-L's tiny
    backbone is ViT-B's; the tiny Swin runs in test_benchmark_swin_cpu)."""
    tool = load_tool('benchmark')
    calls = script_calls(str(tmp_path), '--tiny')
    assert all(tool.parse_args(argv).tiny for argv in calls)
    rows = tool.main(calls[0])['rows']
    assert [row['variant'] for row in rows] == (['stock', 'stock bf16'] +
                                                labels((0, 2, 4), ' bf16'))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'vit-b.json', 'vit-b.png'
    ]
    data = json.loads((tmp_path / 'vit-b.json').read_text())
    assert data['shape'] == [2, 3, 16, 64, 64] and data['amp_only']
