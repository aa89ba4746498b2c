"""Dumped rows name their video, skipped ones included; nothing shifts."""
import pickle

import pytest
import torch
from mmaction.registry import DATASETS, METRICS

from sta_mmaction.evaluation import (IdentifiedDumpResults,
                                     NothingEvaluatedError,
                                     SkippedVideosMetric)
from ..test_datasets.test_corrupt_videos import PIPELINE
from ..test_tools.test_dist_test import make_video

#: (file, label); broken.mp4 holds zeros. The blank line is not a sample.
LINES = [('clip_0.mp4', 1), ('broken.mp4', 2), None, ('clip_1.mp4', 0),
         ('clip_2.mp4', 1)]
NAMES = [line[0] for line in LINES if line]
LABELS = [line[1] for line in LINES if line]


@pytest.fixture(scope='module')
def video_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('identified')
    for i in range(3):
        make_video(root / f'clip_{i}.mp4', seed=i)
    (root / 'broken.mp4').write_bytes(b'\x00' * 512)
    ann = root / 'list.txt'
    ann.write_text(''.join(f'{x[0]} {x[1]}\n' if x else '\n' for x in LINES))
    return dict(ann_file=str(ann), root=root)


def dataset(video_set, **kwargs):
    return DATASETS.build(
        dict(
            type='SafeVideoDataset',
            ann_file=video_set['ann_file'],
            data_prefix=dict(video=str(video_set['root'])),
            pipeline=PIPELINE,
            test_mode=True,
            num_classes=3,
            **kwargs))


def predictions(data):
    """What the Evaluator hands the metrics: data samples as dicts, scored.

    Every clip is predicted as class 1, so top-1 is 2 / 3 over the three
    good clips (and 3 / 4 if the skipped one, label 2, were scored).
    """
    out = []
    for i in range(len(data)):
        sample = data[i]['data_samples']
        sample.set_pred_score(torch.tensor([0.1, 0.8, 0.1 + i / 100]))
        out.append(sample.to_dict())
    return out


def test_every_sample_carries_its_identity(video_set):
    data = dataset(video_set, skip_corrupt=True)
    for i, name in enumerate(NAMES):
        meta = data[i]['data_samples'].metainfo
        assert meta['filename'] == str(video_set['root'] / name)
        assert meta['sample_idx'] == i
        assert ('skipped_video' in meta) == (name == 'broken.mp4')


def test_skip_wrapper_dumps_one_named_row_per_video(video_set, tmp_path):
    out = tmp_path / 'dump.pkl'
    metric = METRICS.build(
        dict(
            type='SkippedVideosMetric',
            wrapped=[
                dict(type='AccMetric', metric_list=('top_k_accuracy', )),
                dict(type='IdentifiedDumpResults', out_file_path=str(out))
            ]))
    preds = predictions(dataset(video_set, skip_corrupt=True))
    metric.process(None, preds[:2])
    metric.process(None, preds[2:] + preds[:1])  # padding: cut off
    res = metric.evaluate(len(NAMES))
    assert res['acc/top1'] == pytest.approx(2 / 3)
    assert res['num_skipped'] == 1
    with open(out, 'rb') as f:
        rows = pickle.load(f)
    assert [(r['sample_idx'], r['filename']) for r in rows] == [
        (i, str(video_set['root'] / n)) for i, n in enumerate(NAMES)
    ]
    assert [r['skipped'] for r in rows] == [False, True, False, False]
    assert [int(r['gt_label']) for r in rows] == LABELS
    assert 'DecordInit raised' in rows[1]['decode_error']
    assert 'pred_score' not in rows[1]  # the placeholder's is meaningless
    for i in (0, 2, 3):
        torch.testing.assert_close(rows[i]['pred_score'],
                                   preds[i]['pred_score'])


def test_plain_dump_results_is_refused_inside_the_wrapper(tmp_path):
    with pytest.raises(ValueError, match=r"cannot wrap DumpResults.*"
                       r"'IdentifiedDumpResults'"):
        SkippedVideosMetric(
            dict(type='DumpResults', out_file_path=str(tmp_path / 'd.pkl')))


def test_unwrapped_dump_is_sorted_and_refuses_anonymous_rows(tmp_path):
    out = tmp_path / 'dump.pkl'
    metric = IdentifiedDumpResults(str(out))
    rows = [dict(filename=f'{i}.mp4', sample_idx=i, pred_score=torch.ones(2))
            for i in (2, 0, 1)]
    metric.process(None, rows)
    metric.compute_metrics(metric.results)
    with open(out, 'rb') as f:
        assert [r['filename'] for r in pickle.load(f)] == [
            '0.mp4', '1.mp4', '2.mp4'
        ]
    with pytest.raises(ValueError, match=r"no \['filename', 'sample_idx'\].*"
                       'SafeVideoDataset'):
        metric.process(None, [dict(pred_score=torch.ones(2))])
    with pytest.raises(ValueError, match=r'sample_idx \[1\] appear more'):
        metric.compute_metrics([rows[2], rows[2]])


def test_all_skipped_fails_after_listing(video_set, tmp_path):
    listed = tmp_path / 'skipped_videos.txt'
    metric = SkippedVideosMetric(
        [dict(type='AccMetric'),
         dict(type='IdentifiedDumpResults',
              out_file_path=str(tmp_path / 'd.pkl'))],
        out_file=str(listed))
    broken = predictions(dataset(video_set, skip_corrupt=True))[1]
    metric.process(None, [broken])
    with pytest.raises(NothingEvaluatedError, match='All 1 videos'):
        metric.evaluate(1)
    assert listed.read_text() == str(video_set['root'] / 'broken.mp4') + '\n'


def test_other_ranks_fail_too_when_rank_0_fails(monkeypatch):
    """Rank 0's error reaches the ranks waiting for its metrics."""
    from sta_mmaction.evaluation import skipped_metric
    monkeypatch.setattr(skipped_metric, 'is_main_process', lambda: False)

    def receive(objects):
        objects[0] = dict(error='NothingEvaluatedError: All 3 videos ...')

    monkeypatch.setattr(skipped_metric, 'broadcast_object_list', receive)
    metric = SkippedVideosMetric(dict(type='AccMetric'))
    with pytest.raises(RuntimeError, match='Rank 0 failed to compute the '
                       'test metrics: NothingEvaluatedError: All 3'):
        metric.evaluate(0)


def test_no_prefix_warning():
    """mmengine warns 'The prefix is not set' for a metric without one."""
    assert IdentifiedDumpResults(out_file_path='x.pkl').prefix == 'dump'
