"""A ``VideoDataset`` that checks its list and names or skips bad videos.

The annotation list is read by
:func:`~sta_mmaction.datasets.annotations.load_video_list` when the dataset
is built, before any video is decoded: a line without a label, with a label
that is not an integer or one outside ``[0, num_classes)``, or a list with
no line at all, stops the run with an
:class:`~sta_mmaction.datasets.annotations.AnnotationError` naming the list
file, the line number and the line. ``num_classes`` keeps MMAction2's
meaning (the class count; the length of the one-hot label for
``multi_class``) and is also the range of single labels;
:func:`~sta_mmaction.datasets.wire_test_data` sets it from
``model.cls_head.num_classes``.

Every sample's data sample carries ``filename`` and ``sample_idx`` in its
metainfo, so a prediction can always be traced to its line of the list.

MMAction2's ``DecordInit`` opens the video from an in-memory buffer, so when
decord cannot read it the error says ``Error reading 1235 bytes...`` and not
which file of the 20 000 in the set was at fault. :class:`SafeVideoDataset`
runs the same pipeline transform by transform and, when one of the
video-reading transforms (``DecordInit``, ``DecordDecode`` and their PyAV,
PIMS and OpenCV siblings) raises, stops with a :class:`CorruptVideoError`
that names the file, the sample index and the transform.

With ``skip_corrupt=True`` the failure is recorded instead: the sample is
still produced, from black frames, so that the DataLoader, the distributed
sampler's padding and the batch shapes are unaffected, and its data sample is
marked with ``skipped_video`` (the file) and ``decode_error`` (why). The
:class:`~sta_mmaction.evaluation.SkippedVideosMetric` evaluator wrapper then
leaves the marked samples out of every metric and reports
``num_evaluated``, ``num_skipped`` and the skipped files. Skipping without
that wrapper would score the black placeholders, so ``tools/test.py
--skip-corrupt-videos`` always sets up both.

Why not check the videos up front? Opening a file is not decoding it: a
video whose header is intact but whose frames are damaged passes an
open-only check and still fails mid-run, and decoding everything twice would
double the data cost of a run. Catching the failure where it happens covers
both, costs nothing for good videos and needs no coordination between ranks.
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


@DATASETS.register_module()
class SafeVideoDataset(VideoDataset):
    """``VideoDataset`` that names undecodable videos, or opts to skip them.

    Takes every argument of MMAction2's ``VideoDataset``. By default it
    behaves like it, except that the annotation list is checked line by
    line when the dataset is built (see the module docstring), every data
    sample's metainfo gains ``filename`` and ``sample_idx``, and a video
    that cannot be opened or decoded stops the run with a
    :class:`CorruptVideoError` naming the file.

    ``num_classes`` (of ``VideoDataset``) is the head's class count: labels
    must lie in ``[0, num_classes)``. Left at None, labels are only checked
    to be non-negative integers, with a warning.

    Args:
        skip_corrupt (bool): Record such videos and go on instead of
            stopping. Their samples are made of black frames and marked
            ``skipped_video`` in their data sample's metainfo; only
            :class:`~sta_mmaction.evaluation.SkippedVideosMetric` knows to leave
            them out, so use the two together. Defaults to False.
        placeholder_shape (tuple[int]): ``(H, W)`` of the black frames that
            stand in for a skipped video; the rest of the pipeline (resize,
            crop) brings them to the input size. Defaults to (256, 256).
        *args, **kwargs: Arguments of ``VideoDataset``.
    """

    def __init__(self,
                 *args,
                 skip_corrupt: bool = False,
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
                'them out of the metrics.',
                logger='current')

    def load_data_list(self) -> List[dict]:
        """The annotation list, every line checked.

        Raises:
            AnnotationError: A line is not ``<file> <label>`` with a label
                in range, or the list is empty.
        """
        return load_video_list(
            self.ann_file,
            video_prefix=self.data_prefix['video'],
            multi_class=self.multi_class,
            num_classes=self.num_classes,
            delimiter=self.delimiter)

    def full_init(self) -> None:
        """Load the list; refuse ``indices`` that select no sample.

        Raises:
            AnnotationError: ``indices`` is 0 or empty, so a test would
                evaluate nothing.
        """
        indices = self._indices
        if not self._fully_initialized and indices is not None and (
                indices == 0 if isinstance(indices, int) else not indices):
            raise AnnotationError(
                f'indices={indices!r} selects no sample of {self.ann_file}: '
                'a test would evaluate nothing. Select at least one line, '
                'or drop indices.')
        super().full_init()

    def prepare_data(self, idx: int) -> Any:
        """``self.pipeline(data_info)``, one transform at a time.

        Raises:
            CorruptVideoError: A video-reading transform failed and
                ``skip_corrupt`` is False, or the pipeline's output has no
                data sample to carry a skipped video's mark.
        """
        results = self.get_data_info(idx)
        filename = results['filename']
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
                if not reads:
                    raise
                error = (f'{type(transform).__name__} raised '
                         f'{type(err).__name__}: {_short(str(err))}')
                if not self.skip_corrupt:
                    raise CorruptVideoError(
                        f'Cannot read video {filename} (sample {idx} of '
                        f'{self.ann_file}): {error}. Fix or remove the file; '
                        f'{SKIP_HINT}.') from err
                print_log(
                    f'Skipping video {filename} (sample {idx}): {error}',
                    logger='current',
                    level=logging.WARNING)
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
