"""tools/accuracy_benchmark.py end to end, tiny: data, training, sweep."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import ROOT

TOOL = osp.join(ROOT, 'tools', 'accuracy_benchmark.py')
# A 3-block, 48-channel STAViT, so that one epoch and the sweep take seconds.
TINY = [
    'model.backbone.embed_dims=48', 'model.backbone.num_heads=2',
    'model.backbone.depth=3', 'model.cls_head.in_channels=48',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]


def run_tool(work_dir, *extra):
    cmd = [
        sys.executable, TOOL, '--work-dir',
        str(work_dir), '--num-classes', '2', '--clips', '4', '2', '3',
        '--epochs', '1', '--strategies', 'sta', 'random', '--drop-numbers',
        '0', '8', '--random-seeds', '0', '1', *extra, '--cfg-options', *TINY
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('bench')
    proc = run_tool(work_dir)
    with open(work_dir / 'results.json') as f:
        return work_dir, json.load(f), proc


def test_smoke_run_writes_table_json_and_plot(smoke):
    work_dir, result, _ = smoke
    for name in ('results.md', 'accuracy_vs_gflops.png', 'data_preview.png',
                 'data/meta.json', 'data/train_list_videos.txt',
                 'data/val_list_videos.txt', 'data/test_list_videos.txt'):
        assert osp.isfile(work_dir / name), name
    assert osp.isfile(result['train']['checkpoint'])
    # r=0 once, shared; 'sta' at r=8 once; 'random' at r=8 once per seed
    runs = [(x['strategy'], x['r'], x['seed']) for x in result['runs']]
    assert runs == [('sta', 0, None), ('sta', 8, None), ('random', 8, 0),
                    ('random', 8, 1)]
    rows = {(x['strategy'], x['r']): x for x in result['rows']}
    assert set(rows) == {('sta', 0), ('sta', 8), ('random', 0),
                         ('random', 8)}
    assert rows['random', 8]['runs'] == 2
    assert rows['sta', 8]['tokens'] == [392, 328, 296, 280]
    assert rows['sta', 0]['tokens'] == [392, 392, 392, 392]
    assert rows['sta', 8]['gflops'] < rows['sta', 0]['gflops']
    for x in result['rows']:
        assert 0 <= x['top1'] <= 1
    table = (work_dir / 'results.md').read_text()
    assert '| r | tokens | GFLOPs (sta) | sta | random | best |' in table
    assert result['winners'].keys() == {'8'}


def test_rerun_reuses_data_and_checkpoint(smoke, tmp_path):
    work_dir, result, _ = smoke
    proc = run_tool(work_dir, '--strategies', 'temporal', '--drop-numbers',
                    '4')
    log = proc.stdout + proc.stderr
    assert 'Reusing the generated set' in log
    assert 'Reusing the checkpoint' in log
    with open(work_dir / 'results.json') as f:
        again = json.load(f)
    assert again['train']['checkpoint'] == result['train']['checkpoint']
    assert [(x['strategy'], x['r']) for x in again['rows']] == [('temporal',
                                                                 0),
                                                                ('temporal',
                                                                 4)]


def test_bad_drop_number(tmp_path):
    cmd = [
        sys.executable, TOOL, '--work-dir',
        str(tmp_path), '--num-classes', '2', '--clips', '1', '1', '1',
        '--drop-numbers', '25'
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert 'every r must be between 0 and 24' in proc.stderr
