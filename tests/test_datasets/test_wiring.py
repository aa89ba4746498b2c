"""wire_test_data: the data side of tools/test.py, as a package function."""
import copy
import os.path as osp

import pytest
from mmaction.registry import DATASETS
from mmengine.config import Config

from sta_mmaction.datasets import (AnnotationError, set_num_classes_from_head,
                                   wire_test_data)
from .test_corrupt_videos import PIPELINE

ACC = dict(type='AccMetric')


def config(tmp_path, evaluator=ACC, dataset_type='VideoDataset', **dataset):
    ann = tmp_path / 'list.txt'
    ann.write_text('a.mp4 1\nb.mp4 399\n')
    return Config(
        dict(
            model=dict(
                type='Recognizer3D', cls_head=dict(num_classes=400)),
            test_dataloader=dict(
                dataset=dict(
                    type=dataset_type,
                    ann_file=str(ann),
                    data_prefix=dict(video=str(tmp_path)),
                    pipeline=PIPELINE,
                    test_mode=True,
                    **dataset)),
            test_evaluator=evaluator,
            work_dir=str(tmp_path / 'wd')))


def test_plain_wiring_checks_the_list_against_the_head(tmp_path):
    cfg = wire_test_data(config(tmp_path))
    dataset = cfg.test_dataloader.dataset
    assert dataset.type == 'SafeVideoDataset' and dataset.num_classes == 400
    assert 'skip_corrupt' not in dataset
    assert cfg.test_evaluator == [ACC]
    assert len(DATASETS.build(dataset)) == 2
    (tmp_path / 'list.txt').write_text('a.mp4 1\nb.mp4 400\n')
    with pytest.raises(AnnotationError, match=r"line 2: 'b.mp4 400'.*"
                       r'in \[0, 400\)'):
        DATASETS.build(cfg.test_dataloader.dataset)


def test_dump_is_identified(tmp_path):
    cfg = wire_test_data(config(tmp_path), dump_file='out.pkl')
    assert cfg.test_evaluator == [
        ACC, dict(type='IdentifiedDumpResults', out_file_path='out.pkl')
    ]
    with pytest.raises(ValueError, match=r"dump_file='out.json'.*\.pkl"):
        wire_test_data(config(tmp_path), dump_file='out.json')


def test_configured_dump_results_become_identified(tmp_path):
    dump = dict(type='DumpResults', out_file_path='mine.pkl')
    cfg = wire_test_data(config(tmp_path, evaluator=[ACC, dump]))
    assert cfg.test_evaluator[1] == dict(
        type='IdentifiedDumpResults', out_file_path='mine.pkl')


def test_skip_wraps_everything_and_lists_in_work_dir(tmp_path):
    cfg = wire_test_data(
        config(tmp_path), skip_corrupt=True, dump_file='out.pkl')
    assert cfg.test_dataloader.dataset.skip_corrupt is True
    assert cfg.test_evaluator == dict(
        type='SkippedVideosMetric',
        wrapped=[
            ACC, dict(type='IdentifiedDumpResults', out_file_path='out.pkl')
        ],
        out_file=osp.join(str(tmp_path / 'wd'), 'skipped_videos.txt'))
    again = wire_test_data(
        copy.deepcopy(cfg), skip_corrupt=True, dump_file='out.pkl')
    assert again.test_evaluator == cfg.test_evaluator
    assert again.test_dataloader == cfg.test_dataloader


def test_dataset_asking_to_skip_gets_the_wrapper(tmp_path):
    """skip_corrupt=True in the config alone would score the placeholders."""
    cfg = wire_test_data(config(tmp_path, skip_corrupt=True))
    assert cfg.test_evaluator['type'] == 'SkippedVideosMetric'


def test_head_class_count_is_required_and_must_agree(tmp_path):
    cfg = config(tmp_path, num_classes=10)
    with pytest.raises(ValueError, match=r'dataset.num_classes=10 but '
                       r'model.cls_head.num_classes=400'):
        set_num_classes_from_head(cfg)
    cfg = config(tmp_path)
    cfg.model.cls_head.num_classes = None
    with pytest.raises(ValueError, match=r'cls_head.num_classes=None'):
        wire_test_data(cfg)


def test_other_dataset_types(tmp_path):
    cfg = config(tmp_path, dataset_type='RawframeDataset')
    assert wire_test_data(cfg).test_dataloader.dataset.type == \
        'RawframeDataset'
    for kwargs in (dict(skip_corrupt=True), dict(dump_file='o.pkl')):
        with pytest.raises(ValueError, match="type='RawframeDataset'"):
            wire_test_data(
                config(tmp_path, dataset_type='RawframeDataset'), **kwargs)


def test_skip_needs_a_work_dir(tmp_path):
    cfg = config(tmp_path)
    cfg.work_dir = None
    with pytest.raises(ValueError, match='sets no work_dir'):
        wire_test_data(cfg, skip_corrupt=True)
