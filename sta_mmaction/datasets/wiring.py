"""Set up a test config's data and evaluator so no number is silently wrong."""
import copy
import logging
import os.path as osp
from typing import Any, List, Optional

from mmengine.logging import print_log

#: Dataset types whose list :func:`wire_test_data` can check.
VIDEO_TYPES = ('VideoDataset', 'SafeVideoDataset')


def set_num_classes_from_head(cfg: Any,
                              loader: str = 'test_dataloader') -> int:
    """Set ``<loader>.dataset.num_classes`` from the head's; return it.

    ``ValueError`` if the head has no positive int ``num_classes`` or the
    dataset sets another.

    Args:
        cfg (Config): The config; changed in place.
        loader (str): The dataloader key. Defaults to ``'test_dataloader'``.
    """
    head = cfg.model.get('cls_head') or {}
    num = head.get('num_classes')
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(
            f'model.cls_head.num_classes={num!r}: the labels of the '
            f'{loader} list are checked against the head\'s class count, so '
            'the model needs a cls_head with a positive int num_classes.')
    dataset = cfg[loader].dataset
    given = dataset.get('num_classes')
    if given is not None and given != num:
        raise ValueError(
            f'{loader}.dataset.num_classes={given!r} but '
            f'model.cls_head.num_classes={num}: the labels would index a '
            'head of another size. Make them equal (or drop the dataset\'s).')
    dataset.num_classes = num
    return num


def wire_train_data(cfg: Any) -> Any:
    """The checks of :func:`wire_test_data` for training: the train and val
    ``VideoDataset``s become ``SafeVideoDataset``s with the head's
    ``num_classes``, so a bad label line or an unreadable video stops the
    run naming the file. Other dataset types are left as they are.

    Args:
        cfg (Config): The train config; changed in place and returned.
    """
    for loader in ('train_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        if dataset.get('type') in VIDEO_TYPES:
            dataset.type = 'SafeVideoDataset'
            set_num_classes_from_head(cfg, loader)
    return cfg


def wire_test_data(cfg: Any, skip_corrupt: bool = False,
                   dump_file: Optional[str] = None) -> Any:
    """Checked list, named decode failures, counted skips, identified dump.

    A ``VideoDataset`` becomes a ``SafeVideoDataset`` with the head's
    ``num_classes`` (:func:`set_num_classes_from_head`), every
    ``DumpResults`` an ``IdentifiedDumpResults`` (``dump_file`` adds one),
    and with ``skip_corrupt`` (or a dataset or evaluator already set up so)
    the evaluator is wrapped in a ``SkippedVideosMetric`` that writes
    ``<work_dir>/skipped_videos.txt`` unless it names its own file. Call it
    after ``--cfg-options`` and the work dir are applied; it is idempotent.

    Args:
        cfg (Config): The test config; changed in place and returned.
        skip_corrupt (bool): Skip and count unreadable videos instead of
            stopping. Defaults to False.
        dump_file (str, optional): ``.pkl`` or ``.pickle`` file for the
            predictions. Defaults to None (no dump added).
    """
    if dump_file is not None and not str(dump_file).endswith(
            ('.pkl', '.pickle')):
        raise ValueError(f'dump_file={dump_file!r}: the dump file must end '
                         'with .pkl or .pickle.')
    dataset = cfg.test_dataloader.dataset
    metrics, out_file = _metric_list(cfg.test_evaluator)
    skip = (skip_corrupt or dataset.get('skip_corrupt') is True
            or out_file is not None)
    kind = dataset.get('type')
    if kind not in VIDEO_TYPES:
        if skip or dump_file is not None:
            raise ValueError(
                f'test_dataloader.dataset.type={kind!r}: skipping unreadable '
                'videos and identified dumps need a VideoDataset or '
                'SafeVideoDataset (lists of "<file> <label>").')
        print_log(
            f'test_dataloader.dataset.type={kind!r} is not a VideoDataset: '
            'its annotation list is not checked and its decode errors may '
            'not name the file.', logger='current', level=logging.WARNING)
        return cfg
    dataset.type = 'SafeVideoDataset'
    set_num_classes_from_head(cfg)
    for metric in metrics:
        if metric.get('type') == 'DumpResults':
            metric['type'] = 'IdentifiedDumpResults'
    if dump_file is not None and not any(
            m.get('out_file_path') == dump_file for m in metrics):
        metrics.append(
            dict(type='IdentifiedDumpResults', out_file_path=dump_file))
    if not skip:
        cfg.test_evaluator = metrics
        return cfg
    if not out_file:
        work_dir = cfg.get('work_dir')
        if not work_dir:
            raise ValueError(
                'Skipping unreadable videos writes <work_dir>/'
                'skipped_videos.txt, but the config sets no work_dir; set '
                'cfg.work_dir before calling wire_test_data.')
        out_file = osp.join(work_dir, 'skipped_videos.txt')
    dataset.skip_corrupt = True
    cfg.test_evaluator = dict(
        type='SkippedVideosMetric', wrapped=metrics, out_file=out_file)
    return cfg


def _metric_list(evaluator: Any):
    """``(metrics, out_file)``: a ``test_evaluator``'s metric configs,
    unwrapped, as a new list, and the file of the ``SkippedVideosMetric`` it
    already was (``''`` if it names none; None if it was not one)."""
    if isinstance(evaluator, dict) and 'metrics' in evaluator and \
            evaluator.get('type', 'Evaluator') == 'Evaluator':
        evaluator = evaluator['metrics']
    items = (list(evaluator) if isinstance(evaluator, (list, tuple))
             else [evaluator])
    metrics: List[dict] = []
    out_file = None
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(
                f'test_evaluator holds {item!r}; wire_test_data needs metric '
                'configs (dicts), e.g. dict(type="AccMetric").')
        item = copy.deepcopy(item)
        if item.get('type') == 'SkippedVideosMetric':
            inner, _ = _metric_list(item['wrapped'])
            metrics += inner
            out_file = item.get('out_file') or ''
        else:
            metrics.append(item)
    return metrics, out_file
