"""tools/accuracy_benchmark.py --fast: the whole chain, its outputs, reuse."""
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys

import pytest

from projects.synthetic_accuracy.accuracy.benchmark import (check_options,
                                                  run_accuracy_benchmark)
from projects.synthetic_accuracy.accuracy.report import VARIANTS
from tests.conftest import ROOT

PROJECT = osp.join(ROOT, 'projects', 'synthetic_accuracy')

TOOL = osp.join(PROJECT, 'tools', 'accuracy_benchmark.py')
SETS = ('shape', 'motion')
MODELS = ('pretrained', 'scratch')
#: The drop numbers and STA fine-tuning r of --fast.
FAST_R = (0, 24)


def _load_tool():
    spec = importlib.util.spec_from_file_location('accuracy_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def run_tool(work_dir):
    cmd = [sys.executable, TOOL, '--fast', '--work-dir', str(work_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    with open(osp.join(work_dir, 'results.json')) as f:
        return json.load(f), proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def fast(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('bench')
    result, log = run_tool(work_dir)
    return work_dir, result, log


def test_fast_run_covers_every_set_model_strategy_and_r(fast):
    work_dir, result, log = fast
    assert 'Estimated wall time' in log
    rows = {(x['set'], x['model'], x['variant'], x['r']): x
            for x in result['rows']}
    assert set(rows) == {(s, m, v, r)
                         for s in SETS for m in MODELS for v in VARIANTS
                         for r in FAST_R}
    for key, x in rows.items():
        assert 0 <= x['top1'] <= 1, key
        assert -1 <= x['cosine'] <= 1 + 1e-9 and math.isfinite(x['cosine'])
        if key[3] == 0:
            assert x['cosine'] == pytest.approx(1), key
            assert x['tokens'] == [392] * 4
        else:
            assert x['gflops'] < rows[key[:3] + (0, )]['gflops'], key
    for s in SETS:
        for m in MODELS:
            random = rows[s, m, 'random', 24]
            assert random['runs'] == 3  # seeds 0, 1, 2: mean and spread
            assert rows[s, m, 'sta', 24]['tokens'] == [392, 200, 104, 56]
            # one r=0 pass, then one per variant and seed
            runs = [x for x in result['runs']
                    if (x['set'], x['model']) == (s, m)]
            assert len(runs) == 1 + len(VARIANTS) + 2
    stages = {(t['set'], t['model'], t['stage']) for t in result['trainings']}
    assert {(s, 'pretrained', 'pre-train') for s in SETS} <= stages
    for t in result['trainings']:
        # each stage's first and last epoch mean loss, one epoch in --fast
        first, last = t['loss']
        assert first == last and math.isfinite(first) and first > 0, t
        if t['stage'] == 'pre-train':
            ref = t['reference']
            assert ref['clips'] == 4  # 2 training clips x 2 classes
            for key in ('model', 'zero', 'visible_mean'):
                assert math.isfinite(ref[key]) and ref[key] > 0, ref
    finetune = {(x['set'], x['model'], x['r']): x
                for x in result['sta_finetune']}
    assert set(finetune) == {(s, 'pretrained', 24) for s in SETS}
    for x in finetune.values():
        assert 0 <= x['before'] <= 1 and 0 <= x['after'] <= 1
        assert x['speed_ratio'] > 0
        assert set(x['step_seconds']) == {'0', '24'}


def test_fast_run_writes_table_and_one_plot_per_set(fast):
    work_dir, result, _ = fast
    table = (work_dir / 'results.md').read_text()
    head = '| r | tokens | GFLOPs | ' + ' | '.join(VARIANTS) + ' | best |'
    assert table.count(head) == len(SETS) * len(MODELS)
    for s in SETS:
        for m in MODELS:
            assert f'### {s} / {m}: top-1 (%)' in table
        with open(work_dir / f'accuracy_vs_gflops_{s}.png', 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
        assert set(result['winners'][s]) == set(MODELS)
    assert '## Fine-tuning with STA on' in table
    assert '| mean loss, first -> last epoch |' in table
    assert '| pre-trained model | visible tubes\' mean colour | zeros |' \
        in table
    assert '## ToMe: proportional attention on (tome) or off' in table


def test_rerun_reuses_every_stage(fast):
    work_dir, result, _ = fast
    again, log = run_tool(work_dir)
    assert 'Reusing the generated set' in log
    assert 'Epoch(train)' not in log  # nothing trained again
    assert all(t['reused'] for t in again['trainings'])
    assert all(x['reused'] for x in again['runs'])
    assert [x['top1'] for x in again['rows']] == \
        [x['top1'] for x in result['rows']]
    assert again['info']['reused_minutes'] >= 0


@pytest.mark.parametrize('argv, message', [
    (['--sets', 'colour'], "--sets ['colour']"),
    (['--models', 'scratch', 'scratch'], "--models ['scratch', 'scratch']"),
    (['--strategies', 'tome_prop'], "--strategies ['tome_prop']"),
    (['--random-seeds', '0', '0', '1'], 'at least 3 distinct seeds'),
    (['--epochs', '0'], '--epochs=0 must be >= 1'),
    (['--num-classes', '7'], '--num-classes=7 must be between 2 and 6'),
    (['--models', 'scratch', '--sta-ft-models', 'pretrained'],
     "--sta-ft-models ['pretrained'] are not in --models"),
    (['--sta-ft-lr-scale', '0'], '--sta-ft-lr-scale=0.0 must be > 0'),
    (['--pretrain-config', 'nowhere.py'], "--pretrain-config='nowhere.py'"),
])
def test_bad_options_raise(argv, message):
    args = _load_tool().parse_args(argv)
    args.sta_ft_models = args.sta_ft_models or []
    with pytest.raises(ValueError) as err:
        check_options(args)
    assert message in str(err.value)


@pytest.mark.parametrize('argv, message', [
    (['--drop-numbers', '0', '25'], 'every r must be between 0 and 24'),
    (['--sta-ft-drop-numbers', '0'], 'needs r > 0'),
])
def test_bad_drop_numbers_raise_before_any_work(argv, message, tmp_path):
    args = _load_tool().parse_args(
        ['--models', 'scratch', '--work-dir',
         str(tmp_path)] + argv)
    with pytest.raises(ValueError) as err:
        run_accuracy_benchmark(args)
    assert message in str(err.value)
    assert not osp.exists(tmp_path / 'shape')  # no data, no training
