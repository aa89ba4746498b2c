"""The annotation list is checked line by line when the dataset is built."""
import logging

import pytest
import torch
from mmaction.registry import DATASETS
from mmengine.logging import MMLogger

from sta_mmaction.datasets import AnnotationError, load_video_list
from .test_corrupt_videos import PIPELINE
from ..test_tools.test_dist_test import make_video


class ListHandler(logging.Handler):
    """Keeps the messages logged to it."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def write_list(tmp_path, text, name='list.txt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def rows(dataset):
    return [(dataset.get_data_info(i)['filename'],
             dataset.get_data_info(i)['label']) for i in range(len(dataset))]


def build(ann_file, dataset_type='SafeVideoDataset', **kwargs):
    kwargs.setdefault('data_prefix', dict(video='/videos'))
    return DATASETS.build(
        dict(
            type=dataset_type,
            ann_file=ann_file,
            pipeline=PIPELINE,
            test_mode=True,
            **kwargs))


def test_stock_scores_a_missing_label_and_accepts_any_label(tmp_path):
    """Why the check exists: -1 and 400 pass MMAction2's VideoDataset."""
    ann = write_list(tmp_path, 'a.mp4 3\nb.mp4\nc.mp4 400\n')
    stock = build(ann, 'VideoDataset', num_classes=400)
    assert [label for _, label in rows(stock)] == [3, -1, 400]


@pytest.mark.parametrize('text, lineno, bad, problem', [
    ('a.mp4 3\nb.mp4\n', 2, 'b.mp4', 'no label'),
    ('a.mp4 3\n\n\n c.mp4 400\n', 4, ' c.mp4 400', 'label 400 is out of '
     r'range'),
    ('a.mp4 -1\n', 1, 'a.mp4 -1', 'label -1 is out of range'),
    ('a.mp4 3.0\n', 1, 'a.mp4 3.0', "label '3.0' is not an integer"),
    ('a.mp4 3_0\n', 1, 'a.mp4 3_0', "label '3_0' is not an integer"),
    ('my clip.mp4\n', 1, 'my clip.mp4', "label 'clip.mp4' is not an "
     'integer'),
])
def test_bad_line_names_file_line_and_text(tmp_path, text, lineno, bad,
                                           problem):
    ann = write_list(tmp_path, text)
    with pytest.raises(AnnotationError) as err:
        build(ann, num_classes=400)
    msg = str(err.value)
    assert msg.startswith(f'{ann}, line {lineno}: {bad!r}: {problem}.'), msg
    assert 'in [0, 400)' in msg and 'fix or remove the line' in msg
    assert isinstance(err.value, ValueError)


def test_good_list_blank_lines_and_spaces_in_names(tmp_path):
    ann = write_list(
        tmp_path, '\n a.mp4 0 \nmy clip  (1).mp4\t399\n\n  \nc.mp4 7\r\n')
    dataset = build(ann, num_classes=400)
    assert rows(dataset) == [
        ('/videos/a.mp4', 0), ('/videos/my clip  (1).mp4', 399),
        ('/videos/c.mp4', 7)
    ]


def test_clip_with_a_space_in_its_name_is_decoded(tmp_path):
    make_video(tmp_path / 'my clip.mp4', seed=0)
    ann = write_list(tmp_path, 'my clip.mp4 5\n')
    with pytest.raises(ValueError, match='too many values to unpack'):
        build(ann, 'VideoDataset', data_prefix=dict(video=str(tmp_path)))
    sample = build(
        ann, num_classes=10, data_prefix=dict(video=str(tmp_path)))[0]
    assert tuple(sample['inputs'].shape) == (1, 3, 16, 64, 64)
    assert int(sample['data_samples'].gt_label) == 5
    assert sample['data_samples'].metainfo['filename'] == str(
        tmp_path / 'my clip.mp4')


def test_custom_delimiter(tmp_path):
    ann = write_list(tmp_path, 'a b.mp4,2\nc.mp4,x\n')
    with pytest.raises(AnnotationError, match="line 2: 'c.mp4,x': label 'x'"):
        build(ann, num_classes=3, delimiter=',')
    ann = write_list(tmp_path, 'a b.mp4,2\n', 'ok.txt')
    assert rows(build(ann, num_classes=3,
                      delimiter=',')) == [('/videos/a b.mp4', 2)]


def test_multi_class_keeps_mmaction_semantics(tmp_path):
    ann = write_list(tmp_path, 'a.mp4 1 3\nb.mp4 0\n')
    assert [d['label'] for d in load_video_list(
        ann, multi_class=True, num_classes=5)] == [[1, 3], [0]]
    dataset = build(ann, multi_class=True, num_classes=5)
    torch.testing.assert_close(
        dataset.get_data_info(0)['label'], torch.tensor([0, 1., 0, 1., 0]))
    bad = write_list(tmp_path, 'a.mp4 1 5\n', 'bad.txt')
    with pytest.raises(AnnotationError, match=r'line 1.*label 5 is out'):
        build(bad, multi_class=True, num_classes=5)
    bad = write_list(tmp_path, 'a.mp4\n', 'nolabel.txt')
    with pytest.raises(AnnotationError, match=r'line 1.*no label'):
        build(bad, multi_class=True, num_classes=5)
    with pytest.raises(ValueError, match='multi_class=True, which needs '
                       'num_classes'):
        build(ann, multi_class=True)


@pytest.mark.parametrize('text', ['', '\n  \n\n'])
def test_empty_list_is_refused_at_construction(tmp_path, text):
    ann = write_list(tmp_path, text)
    with pytest.raises(AnnotationError, match=r'lists no video'):
        build(ann, num_classes=4)


def test_empty_subset_is_refused(tmp_path):
    ann = write_list(tmp_path, 'a.mp4 1\n')
    with pytest.raises(AnnotationError,
                       match=r'indices=\[\] selects no sample of .*list'):
        build(ann, num_classes=4, indices=[])
    with pytest.raises(AnnotationError, match=r'indices=0 selects no'):
        build(ann, num_classes=4, indices=0)
    assert len(build(ann, num_classes=4, indices=[0])) == 1


def test_without_num_classes_only_sign_is_checked_and_said(tmp_path):
    ann = write_list(tmp_path, 'a.mp4 1000\n')
    logger = MMLogger.get_current_instance()
    handler = ListHandler()
    logger.addHandler(handler)
    try:
        assert load_video_list(ann) == [dict(filename='a.mp4', label=1000,
                                              ann_line=1)]
    finally:
        logger.removeHandler(handler)
    assert any('no num_classes given' in m for m in handler.messages)
    bad = write_list(tmp_path, 'a.mp4 -3\n', 'neg.txt')
    with pytest.raises(AnnotationError, match='labels >= 0'):
        load_video_list(bad)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_classes=0), 'num_classes=0'),
    (dict(num_classes=True), 'num_classes=True'),
    (dict(num_classes=4.0), 'num_classes=4.0'),
    (dict(delimiter=''), "delimiter=''"),
])
def test_bad_settings(tmp_path, kwargs, match):
    ann = write_list(tmp_path, 'a.mp4 1\n')
    with pytest.raises(ValueError, match=match):
        load_video_list(ann, **kwargs)



def test_missing_list_names_the_setting(tmp_path):
    """A list that is not there says which setting to point at it."""
    with pytest.raises(AnnotationError) as err:
        load_video_list(str(tmp_path / 'nope.txt'), num_classes=400)
    msg = str(err.value)
    assert 'test_dataloader.dataset.ann_file=' in msg and 'nope.txt' in msg
    assert 'no such file' in msg
