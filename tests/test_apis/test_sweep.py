"""tools/test.py --drop-numbers: every (strategy, r) on the same data, one
model load, a table, sweep.json and sweep.png; other ranks only compute."""
import contextlib
import importlib.util
import io
import json
import os.path as osp
import sys

import pytest
from matplotlib.image import imread

from sta_mmaction.apis import configure_test
from sta_mmaction.apis.sweep import run_sweep, sweep_work_dir
from ..conftest import ROOT
from ..test_tools.test_dist_test import (make_video_set, tiny_checkpoint,
                                         write_tiny_config)

#: What must agree between two runs of one sweep (clips/s is a timing).
SAME = ('strategy', 'drop_number', 'gflops_per_view', 'tokens', 'acc/top1',
        'acc/top5', 'acc/mean1')


def run_test_py_main(argv, monkeypatch):
    """tools/test.py's main in this process: its result and stdout."""
    spec = importlib.util.spec_from_file_location(
        'tools_test_py', osp.join(ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = tool.main()
    return result, out.getvalue()


def table(summary):
    return [{k: row[k] for k in SAME} for row in summary['rows']]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny config; its own list names one video that does not exist."""
    root = tmp_path_factory.mktemp('sweep')
    ann, videos = make_video_set(root / 'videos', labels=[],
                                 extra=[('never_decoded.mp4', 1)])
    config = write_tiny_config(root / 'tiny.py', ann, videos)
    return dict(root=root, config=config,
                ckpt=tiny_checkpoint(config, root / 'tiny.pth'))


@pytest.fixture(scope='module')
def real_sweep(tiny, tmp_path_factory):
    """Two r, two strategies on the real clips, in this process."""
    from ..conftest import CLIPS, SHARED_DATA
    if not all(osp.isfile(osp.join(SHARED_DATA, c)) for c in CLIPS):
        pytest.skip(f'real clips not found in {SHARED_DATA}')
    root = tmp_path_factory.mktemp('real')
    ann = root / 'list.txt'
    ann.write_text(''.join(f'{c} {label}\n' for c, label in CLIPS.items()))
    options = ['--drop-numbers', '0', '4', '--strategies', 'sta', 'random',
               '--cfg-options', f'test_dataloader.dataset.ann_file={ann}',
               f'test_dataloader.dataset.data_prefix.video={SHARED_DATA}']
    with pytest.MonkeyPatch.context() as monkeypatch:
        summary, out = run_test_py_main(
            [tiny['config'], tiny['ckpt'], '--work-dir',
             str(root / 'one'), *options], monkeypatch)
    return dict(summary=summary, out=out, options=options, root=root)


def test_sweep_on_real_clips(real_sweep):
    """r=0 runs once: it is the same model under every strategy."""
    summary, out = real_sweep['summary'], real_sweep['out']
    work_dir = real_sweep['root'] / 'one'
    rows = summary['rows']
    assert [(r['strategy'], r['drop_number']) for r in rows] == [
        (None, 0), ('sta', 4), ('random', 4)]
    assert rows[0]['tokens'] == [128, 128, 128, 128]
    assert rows[1]['tokens'] == rows[2]['tokens'] == [128, 96, 80, 72]
    assert rows[1]['gflops_per_view'] < rows[0]['gflops_per_view']
    for row in rows:  # every variant saw both real clips, 1 view each
        assert row['metrics']['num_evaluated'] == 2
        assert row['metrics']['views_per_video'] == 1
        assert row['metrics']['drop_number'] == row['drop_number']
        assert row['clips_per_s'] > 0
        assert 0 <= row['acc/top1'] <= row['acc/top5'] <= 1
    assert rows[2]['metrics']['strategy'] == 'random'
    assert '| r ' in out and 'clips/s' in out and 'none (unpruned)' in out
    assert out.rstrip().splitlines()[-2:] == [
        f'sweep JSON: {work_dir}/sweep.json', f'plot: {work_dir}/sweep.png']
    with open(work_dir / 'sweep.json') as f:
        assert table(json.load(f)) == table(summary)
    assert imread(str(work_dir / 'sweep.png')).ndim == 3


def test_other_ranks_compute_the_table_and_write_nothing(
        real_sweep, tiny, tmp_path, monkeypatch):
    """A rank other than 0 (is_main_process False) gets the same rows from
    the evaluator and neither times, writes nor prints; a real 2-rank gloo
    run (bash tools/dist_test.sh ... 2 --drop-numbers ...) printed the
    table above, too costly for the suite."""
    import sta_mmaction.apis.sweep as sweep
    monkeypatch.setattr(sweep, 'is_main_process', lambda: False)
    summary, out = run_test_py_main(
        [tiny['config'], tiny['ckpt'], '--work-dir', str(tmp_path / 'rank1'),
         *real_sweep['options']], monkeypatch)
    assert table(summary) == table(real_sweep['summary'])
    assert 'json' not in summary and 'clips_per_s' not in summary['rows'][0]
    assert not (tmp_path / 'rank1' / 'sweep.json').exists()
    assert 'sweep JSON' not in out


def test_sweep_settings_refused_before_any_video(tiny, tmp_path,
                                                 monkeypatch):
    """The refusals come before the (missing) video would be read."""
    with pytest.raises(ValueError, match='each variant would overwrite'):
        run_test_py_main([tiny['config'], tiny['ckpt'], '--dump', 'p.pkl',
                          '--drop-numbers', '0', '4'], monkeypatch)
    cfg = configure_test(tiny['config'], tiny['ckpt'],
                         work_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r'\[4\] given more than once'):
        run_sweep(cfg, [0, 4, 4])
    with pytest.raises(ValueError, match="strategy='randm'"):
        run_sweep(cfg, [0, 4], ['sta', 'randm'])
    with pytest.raises(ValueError, match='drop_number=40'):
        run_sweep(cfg, [40])
    assert sweep_work_dir('work_dirs/sta_vits_k400_r64_quick') == \
        'work_dirs/sta_vits_k400_sweep_quick'
