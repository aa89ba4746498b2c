"""A ``VideoDataset`` that checks its list and names or skips bad videos.

The list is checked by :func:`~.annotations.load_video_list`, and each data
sample's metainfo gets ``filename`` and ``sample_idx``. A decord error says
``Error reading 1235 bytes...``, not which file (``DecordInit`` reads from a
buffer). Here a failing video reader (Decord, PyAV, PIMS or OpenCV ``Init``
or ``Decode``) raises a :class:`CorruptVideoError` naming the file, sample
index and transform. With ``skip_corrupt=True`` the sample is made of
black frames instead (so batches and the sampler's padding are unaffected),
marked ``skipped_video`` and ``decode_error`` for
:class:`~sta_mmaction.evaluation.SkippedVideosMetric` to leave out and count.

Why not check the videos up front? A video with an intact header but damaged
frames passes an open-only check, and decoding everything twice doubles the
data cost; catching the failure where it happens costs nothing for good
videos and needs no coordination between ranks.
"""
import logging
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from mmaction.datasets import VideoDataset
from mmaction.datasets.transforms.loading import (DecordDecode, DecordInit,
                                                  OpenCVDecode, OpenCVInit,
                                                  PIMSDecode, PIMSInit,
                                                  PyAVDecode, PyAVInit)
from mmaction.registry import DATASETS
from mmengine.logging import print_log

from .annotations import AnnotationError, load_video_list

#: Transforms that open a video file. A failure leaves no frame count.
OPEN_TRANSFORMS = (DecordInit, PyAVInit, PIMSInit, OpenCVInit)
#: Transforms that decode the sampled frames into ``results['imgs']``.
DECODE_TRANSFORMS = (DecordDecode, PyAVDecode, PIMSDecode, OpenCVDecode)

#: How tools/test.py and the error message name the opt-in.
SKIP_HINT = ('to skip undecodable videos instead, pass --skip-corrupt-videos '
             'to tools/test.py (or set skip_corrupt=True on SafeVideoDataset '
             'and wrap the evaluator in SkippedVideosMetric); they are then '
             'reported in the metrics and listed in skipped_videos.txt')


class CorruptVideoError(RuntimeError):
    """A video of the dataset cannot be opened or decoded."""


def reader_error(transform: Any, err: Exception) -> Optional[str]:
    """What a video reader's failure says (None if ``transform`` is not an
    open or decode transform, whose errors are then not the video's)."""
    if not isinstance(transform, OPEN_TRANSFORMS + DECODE_TRANSFORMS):
        return None
    return (f'{type(transform).__name__} raised {type(err).__name__}: '
            f'{_short(str(err))}')


@DATASETS.register_module()
class SafeVideoDataset(VideoDataset):
    """``VideoDataset`` that names undecodable videos, or opts to skip them.

    ``num_classes`` is the head's class count: labels must lie in
    ``[0, num_classes)`` (left at None, they only must be >= 0).

    Args:
        skip_corrupt (bool): Go on past undecodable videos, as black samples
            marked ``skipped_video`` for ``SkippedVideosMetric`` to leave
            out. Defaults to False.
        placeholder_shape (tuple[int]): ``(H, W)`` of the black frames,
            before resize and crop. Defaults to (256, 256).
        *args, **kwargs: Arguments of ``VideoDataset``.
    """

    def __init__(self, *args, skip_corrupt: bool = False,
                 placeholder_shape: Sequence[int] = (256, 256),
                 **kwargs) -> None:
        if not isinstance(skip_corrupt, bool):
            raise ValueError(f'skip_corrupt must be True or False, got '
                             f'{skip_corrupt!r}.')
        shape = tuple(placeholder_shape)
        if len(shape) != 2 or not all(
                isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(
                f'placeholder_shape={placeholder_shape!r} must be (H, W) '
                'with two positive ints, e.g. (256, 256).')
        self.skip_corrupt = skip_corrupt
        self.placeholder_shape: Tuple[int, int] = shape  # type: ignore
        super().__init__(*args, **kwargs)
        if skip_corrupt:
            print_log(
                'SafeVideoDataset: skip_corrupt=True, undecodable videos '
                'become black placeholders marked `skipped_video`; the '
                'evaluator must be wrapped in SkippedVideosMetric to leave '
                'them out of the metrics.', logger='current')

    def load_data_list(self) -> List[dict]:
        """The annotation list, every line checked (``AnnotationError``)."""
        return load_video_list(
            self.ann_file, video_prefix=self.data_prefix['video'],
            multi_class=self.multi_class, num_classes=self.num_classes,
            delimiter=self.delimiter)

    def full_init(self) -> None:
        """Load the list; ``AnnotationError`` if ``indices`` selects none."""
        indices = self._indices
        if not self._fully_initialized and indices is not None and (
                indices == 0 if isinstance(indices, int) else not indices):
            raise AnnotationError(
                f'indices={indices!r} selects no sample of {self.ann_file}: '
                'a test would evaluate nothing. Select at least one line, '
                'or drop indices.')
        super().full_init()

    def prepare_data(self, idx: int) -> Any:
        """``self.pipeline(data_info)``, one transform at a time."""
        results = self.get_data_info(idx)
        filename = results['filename']
        line = results.get('ann_line')
        where = (f'line {line} of {self.ann_file}' if line is not None else
                 f'sample {idx} of {self.ann_file}')
        identity = dict(filename=filename, sample_idx=results['sample_idx'])
        error: Optional[str] = None
        for transform in self.pipeline.transforms:
            reads = isinstance(transform, OPEN_TRANSFORMS + DECODE_TRANSFORMS)
            if reads and error is not None:
                # the video already failed: fill in what the reader would
                results = self._placeholder(results, transform)
                continue
            try:
                results = transform(results)
            except Exception as err:
                error = reader_error(transform, err)
                if error is None:
                    raise
                if not self.skip_corrupt:
                    raise CorruptVideoError(
                        f'Cannot read video {filename} ({where}): {error}. '
                        'Fix or remove the file; '
                        f'{SKIP_HINT}.') from err
                print_log(f'Skipping video {filename} ({where}): '
                          f'{error}', logger='current', level=logging.WARNING)
                results = self._placeholder(results, transform)
            if results is None:
                return None
        sample = results.get('data_samples') if isinstance(results,
                                                           dict) else None
        if hasattr(sample, 'set_metainfo'):
            # after the pipeline, so PackActionInputs' meta_keys cannot drop it
            sample.set_metainfo(identity)
        if error is not None:
            if not hasattr(sample, 'set_metainfo'):
                raise CorruptVideoError(
                    f'Cannot mark skipped video {filename}: the pipeline '
                    'does not end in PackActionInputs, so its output has no '
                    'data sample to carry the mark.')
            sample.set_metainfo(
                dict(skipped_video=filename, decode_error=error))
        return results

    def _placeholder(self, results: dict, transform: Any) -> dict:
        """What ``transform`` would add, for a video that cannot be read."""
        results['video_reader'] = None
        if isinstance(transform, OPEN_TRANSFORMS):
            # one frame: every sampler then picks frame 0 for every index
            results['total_frames'] = 1
            results['avg_fps'] = 30.0
            return results
        num = int(np.asarray(results['frame_inds']).size)
        frames = np.zeros((num, *self.placeholder_shape, 3), dtype=np.uint8)
        results['imgs'] = list(frames)  # (H, W, 3) each, as decoders give
        results['original_shape'] = self.placeholder_shape
        results['img_shape'] = self.placeholder_shape
        return results


def _short(text: str, limit: int = 300) -> str:
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit] + '...'
