"""Read a ``VideoDataset`` annotation list, refusing every line it cannot use.

MMAction2's ``VideoDataset.load_data_list`` reads a line without a label as
label ``-1`` (a class of its own to ``AccMetric``), accepts any integer label
and splits on every delimiter, so a file name with a space breaks its line.
:func:`load_video_list` stops at the first unusable line, naming the file,
the line number and the line. Single labels are taken off the right end, so
file names may hold spaces; ``multi_class`` lines are read as by MMAction2.
"""
import logging
import os.path as osp
import re
from typing import List, Optional, Union

from mmengine.fileio import list_from_file
from mmengine.logging import print_log

_INTEGER = re.compile(r'-?[0-9]+')


class AnnotationError(ValueError):
    """A line of an annotation list is not ``<file> <label>`` as required."""


def load_video_list(ann_file: str,
                    video_prefix: Optional[str] = None,
                    multi_class: bool = False,
                    num_classes: Optional[int] = None,
                    delimiter: str = ' ') -> List[dict]:
    """``VideoDataset``'s data list, with every line checked.

    Args:
        ann_file (str): The annotation list.
        video_prefix (str, optional): Folder joined before each file name.
            Defaults to None.
        multi_class (bool): Lines hold one or more labels each.
            Defaults to False.
        num_classes (int, optional): Labels must lie in
            ``[0, num_classes)``; required for ``multi_class``. Defaults to
            None: labels are only checked to be >= 0, with a warning.
        delimiter (str): Field separator. Defaults to ``' '``: any run of
            whitespace, as ``str.split()``.

    Returns:
        list[dict]: ``dict(filename=..., label=..., ann_line=...)`` per
        non-blank line (a list of int labels for ``multi_class``;
        ``ann_line`` numbers the list's lines from 1, for error messages).

    Raises:
        AnnotationError: A line is unusable, or the list has none.
        ValueError: ``num_classes`` or ``delimiter`` is not usable.
    """
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f'num_classes={num_classes!r} (of {ann_file}) must '
                         'be a positive int: the class count of the head.')
    if multi_class and num_classes is None:
        raise ValueError(f'{ann_file} is read with multi_class=True, which '
                         'needs num_classes (the length of the one-hot '
                         'label); set the dataset\'s num_classes.')
    if not isinstance(delimiter, str) or not delimiter:
        raise ValueError(f'delimiter={delimiter!r} (of {ann_file}) must be a '
                         "non-empty string, e.g. ' '.")
    if num_classes is None:
        print_log(
            f'{ann_file}: no num_classes given, so labels are only checked '
            'to be integers >= 0, not to be below the head\'s class count; '
            'sta_mmaction.datasets.wire_test_data sets it from '
            'model.cls_head.num_classes.', logger='current',
            level=logging.WARNING)
    if '://' not in str(ann_file) and not osp.isfile(ann_file):
        raise AnnotationError(
            f'ann_file={ann_file!r}: no such file '
            f'(relative paths start at {osp.abspath(".")}). Point it at '
            'your list, e.g. --cfg-options '
            'test_dataloader.dataset.ann_file=/data/k400/val_list.txt '
            'test_dataloader.dataset.data_prefix.video=/data/k400/val')
    sep = None if delimiter == ' ' else delimiter
    allowed = f'in [0, {num_classes})' if num_classes is not None else '>= 0'
    form = '<file> <label> [<label> ...]' if multi_class else '<file> <label>'
    data_list = []
    for lineno, line in enumerate(list_from_file(ann_file), start=1):
        text = line.strip()
        if not text:
            continue
        where = f'{ann_file}, line {lineno}: {line!r}'
        rule = (f'Each non-blank line must be {form} with integer labels '
                f'{allowed}; fix or remove the line.')
        fields = text.split(sep) if multi_class else text.rsplit(sep, 1)
        name, tokens = fields[0].strip(), [f.strip() for f in fields[1:]]
        if not tokens:
            raise AnnotationError(f'{where}: no label. {rule}')
        if not name:
            raise AnnotationError(f'{where}: no file name. {rule}')
        labels = []
        for token in tokens:
            if not _INTEGER.fullmatch(token):
                raise AnnotationError(
                    f'{where}: label {token!r} is not an integer. {rule}')
            label = int(token)
            if label < 0 or (num_classes is not None and label >= num_classes):
                raise AnnotationError(
                    f'{where}: label {label} is out of range. {rule}')
            labels.append(label)
        if video_prefix is not None:
            name = osp.join(video_prefix, name)
        label_out: Union[int, List[int]] = labels if multi_class \
            else labels[0]
        data_list.append(dict(filename=name, label=label_out, ann_line=lineno))
    if not data_list:
        raise AnnotationError(
            f'{ann_file} lists no video: a run over it would test or train '
            f'on nothing. Give a list with one {form} line per video.')
    return data_list
