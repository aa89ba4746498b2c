"""Unreadable videos: named by default, counted and listed with the opt-in.

The clips are generated; the bad files are a truncated mp4 (its moov atom
cut off), random bytes, an empty file and a file that does not exist.
"""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmaction.datasets.transforms.loading import DecordDecode
from mmaction.registry import DATASETS, METRICS

from sta_mmaction.datasets import CorruptVideoError, wire_test_data
from sta_mmaction.evaluation import NothingEvaluatedError, SkippedVideosMetric
from ..test_tools.test_dist_test import (LABELS, last_metrics, make_video_set,
                             run_test_py, tiny_checkpoint, write_tiny_config)

PIPELINE = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=16,
        frame_interval=1,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='CenterCrop', crop_size=64),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
#: Label 7 is what the tiny checkpoint's biased head predicts for any clip,
#: a black placeholder included: if a skipped video were scored, top-1
#: would rise above the 3 / 5 of the good clips.
BAD = [('truncated.mp4', 7), ('garbage.mp4', 7), ('empty.mp4', 7),
       ('missing.mp4', 7)]


def write_bad_files(root):
    good = (root / 'clip_0.mp4').read_bytes()
    (root / 'truncated.mp4').write_bytes(good[:len(good) // 2])
    rng = np.random.default_rng(0)
    (root / 'garbage.mp4').write_bytes(rng.bytes(3000))
    (root / 'empty.mp4').write_bytes(b'')


@pytest.fixture(scope='module')
def bad_set(tmp_path_factory):
    """5 good clips (labels ``LABELS``) and the 4 bad files, in K400 format."""
    root = tmp_path_factory.mktemp('corrupt')
    ann, videos = make_video_set(root / 'videos', extra=BAD)
    write_bad_files(root / 'videos')
    return dict(root=root, ann_file=ann, video_root=videos)


def build(bad_set, dataset_type='SafeVideoDataset', **kwargs):
    return DATASETS.build(
        dict(
            type=dataset_type,
            ann_file=bad_set['ann_file'],
            data_prefix=dict(video=bad_set['video_root']),
            pipeline=PIPELINE,
            test_mode=True,
            **kwargs))


def test_stock_error_does_not_name_the_file(bad_set):
    """Why the wrapper exists: decord reads from a buffer, not a path."""
    stock = build(bad_set, 'VideoDataset')
    with pytest.raises(RuntimeError) as err:
        stock[6]  # garbage.mp4
    assert 'garbage.mp4' not in str(err.value)


@pytest.mark.parametrize('index', [5, 6, 7, 8])
def test_default_names_the_file(bad_set, index):
    name = BAD[index - 5][0]
    dataset = build(bad_set)
    with pytest.raises(CorruptVideoError) as err:
        dataset[index]
    msg = str(err.value)
    assert osp.join(bad_set['video_root'], name) in msg
    assert f'line {index + 1} of ' in msg and 'DecordInit' in msg
    assert '--skip-corrupt-videos' in msg and 'skip_corrupt=True' in msg


def test_default_names_the_file_from_a_worker(bad_set):
    """The error survives a DataLoader worker with its type and message."""
    from torch.utils.data import DataLoader, Subset
    loader = DataLoader(
        Subset(build(bad_set), [0, 6]),
        batch_size=1,
        num_workers=1,
        collate_fn=lambda batch: batch)
    with pytest.raises(CorruptVideoError, match=r'garbage\.mp4'):
        list(loader)


def test_good_samples_are_unchanged(bad_set):
    stock, safe = build(bad_set, 'VideoDataset'), build(
        bad_set, skip_corrupt=True)
    for i in range(len(LABELS)):
        a, b = stock[i], safe[i]
        assert torch.equal(a['inputs'], b['inputs'])
        assert 'skipped_video' not in b['data_samples'].metainfo


def test_opt_in_yields_marked_placeholders(bad_set):
    dataset = build(bad_set, skip_corrupt=True)
    good = dataset[0]
    for index, (name, _) in enumerate(BAD, start=5):
        sample = dataset[index]
        assert sample['inputs'].shape == good['inputs'].shape
        assert int(sample['inputs'].abs().sum()) == 0  # black frames
        meta = sample['data_samples'].metainfo
        assert meta['skipped_video'] == osp.join(bad_set['video_root'], name)
        assert 'DecordInit raised' in meta['decode_error']
        assert int(sample['data_samples'].gt_label) == 7


def test_decode_failure_after_open(bad_set, monkeypatch):
    """A file that opens but whose frames fail to decode: same two paths."""
    real = DecordDecode.transform

    def flaky(self, results):
        if results['filename'].endswith('clip_2.mp4'):
            raise RuntimeError('[h264] corrupt frame')
        return real(self, results)

    monkeypatch.setattr(DecordDecode, 'transform', flaky)
    with pytest.raises(CorruptVideoError, match=r'clip_2\.mp4.*DecordDecode'):
        build(bad_set)[2]
    sample = build(bad_set, skip_corrupt=True)[2]
    assert tuple(sample['inputs'].shape) == (1, 3, 16, 64, 64)
    assert sample['data_samples'].metainfo['skipped_video'].endswith(
        'clip_2.mp4')


@pytest.mark.parametrize('kwargs, match', [
    (dict(skip_corrupt='yes'),
     "skip_corrupt must be True or False, got 'yes'"),
    (dict(placeholder_shape=(0, 64)), r'placeholder_shape=\(0, 64\)'),
    (dict(placeholder_shape=(64, )), r'\(H, W\)'),
])
def test_bad_settings(bad_set, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(bad_set, **kwargs)


def fake_sample(label, pred, skipped=None):
    sample = dict(
        pred_score=torch.tensor(pred, dtype=torch.float32),
        gt_label=torch.tensor([label]))
    if skipped:
        sample.update(skipped_video=skipped, decode_error='unreadable')
    return sample


def test_metric_leaves_skipped_out(tmp_path):
    out = tmp_path / 'wd' / 'skipped_videos.txt'
    metric = METRICS.build(
        dict(
            type='SkippedVideosMetric',
            wrapped=[dict(type='AccMetric', metric_list=('top_k_accuracy', ))],
            out_file=str(out)))
    right, wrong = [0.9, 0.1], [0.1, 0.9]
    metric.process(None, [fake_sample(0, right), fake_sample(0, right)])
    metric.process(None, [fake_sample(0, right, skipped='a.mp4'),
                          fake_sample(0, wrong)])
    metric.process(None, [fake_sample(0, right, skipped='b.mp4')])
    res = metric.evaluate(5)
    assert res['num_evaluated'] == 3 and res['num_skipped'] == 2
    assert res['skipped_videos'] == ['a.mp4', 'b.mp4']
    assert res['acc/top1'] == pytest.approx(2 / 3)  # not 4 / 5, not 2 / 5
    assert out.read_text() == 'a.mp4\nb.mp4\n'


def test_metric_fails_when_all_skipped_and_cuts_padding(tmp_path):
    """Nothing evaluated is an error, after the skipped files are listed."""
    out = tmp_path / 'skipped_videos.txt'
    metric = SkippedVideosMetric(dict(type='AccMetric'), out_file=str(out))
    for name in ('a.mp4', 'b.mp4', 'a.mp4'):  # the last one is padding
        metric.process(None, [fake_sample(0, [1.0, 0.0], skipped=name)])
    with pytest.raises(NothingEvaluatedError,
                       match=r'All 2 videos .* skipped.*a\.mp4, b\.mp4'):
        metric.evaluate(2)
    assert out.read_text() == 'a.mp4\nb.mp4\n'
    assert metric.results == []
    with pytest.raises(ValueError, match='needs metrics to wrap'):
        SkippedVideosMetric([])


@pytest.fixture(scope='module')
def tiny_run(bad_set):
    root = bad_set['root']
    config = write_tiny_config(root / 'tiny_sta.py', bad_set['ann_file'],
                               bad_set['video_root'])
    return dict(config=config, ckpt=tiny_checkpoint(config, root / 't.pth'))


def test_tools_default_run_fails_naming_the_file(bad_set, tiny_run,
                                                 tmp_path):
    proc = run_test_py(
        tiny_run['config'], tiny_run['ckpt'], tmp_path, ok=False)
    assert proc.returncode != 0
    # a traceback names the type; tools/test.py may print the message alone
    assert 'Cannot read video ' + osp.join(bad_set['video_root'],
                                           'truncated.mp4') in proc.stderr
    assert '--skip-corrupt-videos' in proc.stderr


def test_tools_opt_in_reports_and_lists(bad_set, tiny_run, tmp_path):
    run_test_py(tiny_run['config'], tiny_run['ckpt'], tmp_path,
                '--skip-corrupt-videos')
    metrics = last_metrics(tmp_path)
    paths = [osp.join(bad_set['video_root'], n) for n, _ in BAD]
    assert metrics['num_evaluated'] == len(LABELS)
    assert metrics['num_skipped'] == len(BAD)
    assert metrics['skipped_videos'] == paths
    # the denominator is the 5 evaluated clips: 3 of them are label 7
    assert metrics['acc/top1'] == pytest.approx(3 / 5)
    listed = (tmp_path / 'skipped_videos.txt').read_text().splitlines()
    assert listed == paths


def wired_run(tiny_run, work_dir, ann_file=None, **wire):
    """An in-process test run of the tiny model, wired by wire_test_data."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(tiny_run['config'])
    if ann_file is not None:
        cfg.test_dataloader.dataset.ann_file = ann_file
    cfg.work_dir = str(work_dir)
    cfg.load_from = tiny_run['ckpt']
    cfg.experiment_name = work_dir.name
    wire_test_data(cfg, **wire)
    return Runner.from_cfg(cfg).test()


def test_wired_run_dumps_every_line_named(bad_set, tiny_run, tmp_path):
    """Skipped videos keep their rows: no row after them shifts."""
    dump = tmp_path / 'dump.pkl'
    metrics = wired_run(
        tiny_run, tmp_path, skip_corrupt=True, dump_file=str(dump))
    assert metrics['acc/top1'] == pytest.approx(3 / 5)
    with open(dump, 'rb') as f:
        rows = pickle.load(f)
    names = [f'clip_{i}.mp4' for i in range(len(LABELS))] + [
        n for n, _ in BAD
    ]
    assert [(r['sample_idx'], osp.basename(r['filename']), r['skipped'])
            for r in rows] == [(i, n, i >= len(LABELS))
                               for i, n in enumerate(names)]
    assert [int(r['gt_label']) for r in rows] == LABELS + [7] * len(BAD)
    assert all('pred_score' in r for r in rows[:len(LABELS)])
    assert all('decode_error' in r for r in rows[len(LABELS):])


def test_wired_run_with_nothing_readable_fails(bad_set, tiny_run, tmp_path):
    ann = tmp_path / 'all_bad.txt'
    ann.write_text(''.join(f'{n} {label}\n' for n, label in BAD))
    with pytest.raises(NothingEvaluatedError, match='All 4 videos'):
        wired_run(tiny_run, tmp_path, str(ann), skip_corrupt=True)
    assert len((tmp_path / 'skipped_videos.txt').read_text().splitlines()) \
        == len(BAD)
