"""tools/accuracy_benchmark.py --fast: the whole chain, its outputs, reuse."""
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys

import pytest

from projects.synthetic_accuracy.accuracy.benchmark import (
    _gate, check_options, run_accuracy_benchmark, training_groups)
from projects.synthetic_accuracy.accuracy.evidence import BRACKETS
from projects.synthetic_accuracy.accuracy.report import (README_END,
                                                         README_START,
                                                         replace_section,
                                                         statements,
                                                         summarise)
from sta_mmaction.core import STRATEGIES
from tests.conftest import ROOT, SHARED_DATA

PROJECT = osp.join(ROOT, 'projects', 'synthetic_accuracy')
TOOL = osp.join(PROJECT, 'tools', 'accuracy_benchmark.py')
#: The headline and stress r of --fast.
FAST_R = (8, 24)
#: The footage set needs the real clips; without them it is skipped.
SETS = ('shape', 'footage') if osp.isfile(osp.join(SHARED_DATA,
                                                   'demo.mp4')) else (
                                                       'shape', )


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


def test_fast_run_covers_every_set_strategy_and_r(fast):
    work_dir, result, log = fast
    assert 'Estimated wall time' in log
    variants = set(STRATEGIES) | set(BRACKETS)
    rows = {(x['set'], x['variant'], x['r']): x for x in result['rows']}
    assert set(rows) == {(s, 'unpruned', 0) for s in SETS} | {
        (s, v, r) for s in SETS for v in variants for r in FAST_R}
    for key, x in rows.items():
        if x['skipped']:  # only the library may refuse a strategy
            assert key[1] in STRATEGIES and 'refused' in log, key
            continue
        assert 0 <= x['top1']['low'] <= x['top1']['mean'] <= \
            x['top1']['high'] <= 1, key
        assert all(math.isfinite(c) for c in [x['cosine']])
        assert len(x['evidence']) == 3  # after each prune point
        if key[2] == 0:
            assert x['cosine'] == pytest.approx(1)
            assert x['evidence_last']['mean'] == 1  # nothing dropped
            assert x['tokens'] == [392] * 4
        else:
            assert x['gflops'] < rows[key[0], 'unpruned', 0]['gflops']
        # the probe at r=0 and the headline r, not in the stress test
        assert (x['probe'] is None) == (key[2] == 24), key
    for s in SETS:
        for r in FAST_R:
            keep = rows[s, 'keep_evidence', r]['evidence_last']['mean']
            drop = rows[s, 'drop_evidence', r]['evidence_last']['mean']
            for v in STRATEGIES:
                x = rows[s, v, r]
                if not x['skipped']:
                    assert drop <= x['evidence_last']['mean'] <= keep, (s, v)
            assert rows[s, 'keep_evidence', r]['tokens'] == \
                rows[s, 'sta', r]['tokens']
        assert rows[s, 'sta', 24]['tokens'] == [392, 200, 104, 56]
        assert rows[s, 'random', 8]['vs_random'] is None
        assert rows[s, 'sta', 8]['vs_random']['pred']['n'] == 4
    assert [g['compared'] for g in result['gates']] == [True] * len(SETS)
    stages = [t['stage'] for t in result['trainings']]
    assert stages == ['train at r=0', 'fine-tune: sta at r=8',
                      'fine-tune: random at r=8',
                      'fine-tune: r=0, same epochs']
    ft = {(x['set'], x['label']): x for x in result['finetune']}
    assert set(ft) == {(s, label) for s in SETS for label in (
        'sta at r=8', 'random at r=8', 'r=0, same epochs',
        'none (the r=0 model)')}
    for x in ft.values():
        assert set(x['tests']) == {'sta r=8', 'random r=8', 'r=0'}
    assert set(ft[SETS[0], 'sta at r=8']['vs']['r=0']) == {
        'random at r=8', 'r=0, same epochs', 'none (the r=0 model)'}


def test_fast_run_writes_table_json_and_plots(fast):
    work_dir, result, _ = fast
    table = (work_dir / 'results.md').read_text()
    for s in SETS:
        assert f'## {s} / scratch' in table
        with open(work_dir / f'accuracy_vs_gflops_{s}_scratch.png',
                  'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    for head in ('### Headline budgets', '### Stress test',
                 'Evidence tokens kept (%)', 'linear probe refitted',
                 'favours reductions whose pooled mean is unbiased',
                 '## What the paired intervals support',
                 '## Fine-tuning controls', 'load average'):
        assert head in table, head
    assert '| strategy | r=8 (' in table


def test_rerun_reuses_every_stage(fast):
    work_dir, result, _ = fast
    again, log = run_tool(work_dir)
    assert 'Reusing the generated set' in log
    assert 'Epoch(train)' not in log  # nothing trained again
    assert all(t['reused'] for t in again['trainings'])
    assert all(x['reused'] for x in again['runs'])
    assert again['rows'] == result['rows']


def test_gate_needs_the_lower_bound_above_the_bar():
    args = _load_tool().parse_args(['--num-classes', '4'])
    run = dict(labels=[0] * 40, pred=[0] * 30 + [1] * 10)  # 75%
    assert _gate(run, args, 'motion', 'scratch')['compared']
    run['pred'] = [0] * 22 + [1] * 18  # 55%: above chance, not 2x clearly
    gate = _gate(run, args, 'motion', 'scratch')
    assert gate['bar'] == 0.5 and not gate['compared']
    assert training_groups(['shape', 'motion', 'footage']) == [
        ['shape', 'footage'], ['motion']]


def test_statements_name_only_separated_pairs():
    labels = [1] * 40

    def run(variant, pred):
        return dict(set='s', model='m', variant=variant, r=8, seed=None,
                    labels=labels, pred=pred, probe_pred=None,
                    cosine=[1.] * 40, evidence=None, gflops=1., tokens=[],
                    skipped=None)

    rows = summarise([
        run('random', [1] * 20 + [0] * 20),
        run('sta', [1] * 40),  # 20 clips better, none worse
        run('tome', [1] * 21 + [0] * 19),  # one clip better
    ])
    said = statements(rows, [8])
    assert any(s.startswith('s/m, r=8: sta > random in top-1') for s in said)
    assert any('tome < sta in top-1' in s for s in said)
    assert not any('tome > random' in s for s in said)


def test_readme_section_is_replaced_between_markers():
    text = f'intro\n{README_START}\nold\n{README_END}\ntail\n'
    out = replace_section(text, 'new table\n')
    assert out.startswith(f'intro\n{README_START}\n\nnew table\n')
    assert out.endswith(f'{README_END}\ntail\n') and 'old' not in out
    with pytest.raises(ValueError, match='results:start'):
        replace_section('no markers', 'x')


@pytest.mark.parametrize('argv, message', [
    (['--sets', 'colour'], "--sets ['colour']"),
    (['--models', 'scratch', 'scratch'], "--models ['scratch', 'scratch']"),
    (['--strategies', 'tome_prop'], "--strategies ['tome_prop']"),
    (['--epochs', '0'], '--epochs=0 must be >= 1'),
    (['--num-classes', '7'], '--num-classes=7 must be between 2 and 6'),
    (['--drop-numbers', '8', '8'], 'give distinct values >= 1'),
    (['--stress-drop-numbers', '16'], 'both a headline budget and a stress'),
    (['--ft-models', 'pretrained'],
     "--ft-models ['pretrained'] are not in --models"),
    (['--ft-lr-scale', '0'], '--ft-lr-scale=0.0 must be > 0'),
    (['--chance-multiple', '-1'], '--chance-multiple=-1.0 must be >= 0'),
])
def test_bad_options_raise(argv, message):
    args = _load_tool().parse_args(argv)
    args.ft_models = args.ft_models or []
    with pytest.raises(ValueError) as err:
        check_options(args)
    assert message in str(err.value)


@pytest.mark.parametrize('argv, message', [
    (['--drop-numbers', '25'], 'every r must be between 1 and 24'),
    (['--sets', 'footage', '--footage-dir', '/nowhere'],
     'no set to run: footage set: no real clips'),
])
def test_bad_budgets_and_sets_raise_before_any_work(argv, message, tmp_path):
    args = _load_tool().parse_args(['--work-dir', str(tmp_path)] + argv)
    with pytest.raises(ValueError) as err:
        run_accuracy_benchmark(args)
    assert message in str(err.value)
    assert not osp.exists(tmp_path / 'shape')  # no data, no training
