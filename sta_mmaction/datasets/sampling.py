"""VideoMAE's test views (SSV2 and Kinetics-400) as MMAction2 transforms.

The paper's ViT numbers were measured with VideoMAE's own test loaders
(``ssv2.py`` and ``kinetics.py`` of MCG-NJU/VideoMAE), whose frames, resize
and crops differ from MMAction2's ``UniformSample`` / ``SampleFrames``,
``Resize`` and ``ThreeCrop``. These transforms restate VideoMAE's rules so
that the rest of an MMAction2 test pipeline (``DecordInit``,
``DecordDecode``, ``FormatShape``, ``PackActionInputs``) runs unchanged:

- :class:`VideoMAESSV2Sample`: ``clip_len`` segments of ``tick =
  total_frames / clip_len`` frames; view 0 takes ``floor(tick * x)`` and
  view 1 ``floor(tick * x + tick / 2)``, ``x = 0 .. clip_len - 1``.
  (VideoMAE sorts the two sets together and takes every other frame, which
  gives the same two sets because each segment's start lies between them.)
- :class:`VideoMAEKineticsSample`: every ``frame_interval``-th frame from
  frame 0 (``M = ceil(total_frames / frame_interval)`` of them), padded with
  the last one up to ``clip_len``; view ``k`` is ``clip_len`` consecutive
  entries from position ``int(k * max(M - clip_len, 0) / (num_clips - 1))``.
  MMAction2's ``SampleFrames`` places its clips elsewhere (centred in
  ``num_clips`` equal stretches, frames not on the ``frame_interval`` grid
  from 0) and loops a short video instead of repeating its last frame.
- :class:`VideoMAEResize`: short side to ``short_side``, long side
  ``int(short_side * long / short)`` (truncated; MMAction2's ``Resize``
  rounds), bilinear, frames already at ``short_side`` untouched.
- :class:`VideoMAEThreeCrop`: three ``crop_size`` squares along the long
  side starting at ``int(k * (long - crop_size) / 2)``, ``k = 0, 1, 2``, in
  that order (MMAction2's ``ThreeCrop`` puts its last crop at ``2 * ((long -
  crop_size) // 2)``, a pixel short of the edge when the difference is odd).

VideoMAE defines one-view sampling in neither file (its Kinetics formula
divides by ``num_clips - 1``). With ``num_clips=1``, as the quick and
visualisation paths set it, :class:`VideoMAESSV2Sample` gives view 0 and
:class:`VideoMAEKineticsSample` the clip midway between the first and the
last of its views.
"""
import copy
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform


#: Test-pipeline steps that sample the clips of a video (``num_clips``,
#: ``clip_len``), MMAction2's and ours; the quick protocol and the view-shape
#: reader look for these.
SAMPLER_TYPES = ('SampleFrames', 'UniformSample', 'UniformSampleFrames',
                 'VideoMAESSV2Sample', 'VideoMAEKineticsSample')
#: Steps that cut several spatial crops (``crop_size``) from each clip.
MULTI_CROP_TYPES = ('ThreeCrop', 'TenCrop', 'VideoMAEThreeCrop')


def _check_positive(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{owner}: {name} must be a positive integer, got '
                         f'{value!r}.')


def _check_test_mode(owner: str, test_mode) -> None:
    if test_mode is not True:
        raise ValueError(
            f'{owner}: test_mode={test_mode!r}, but only VideoMAE\'s test '
            'views are implemented (its training sampling is random). Use '
            'test_mode=True, or MMAction2\'s samplers for training.')


def _num_frames(owner: str, results: Dict) -> int:
    total = results['total_frames']
    if total < 1:
        raise ValueError(
            f'{owner}: video {results.get("filename", "<unnamed>")!r} has '
            f'total_frames={total}; there is no frame to sample. Check the '
            'file or leave it out of the annotation list.')
    return int(total)


def videomae_ssv2_indices(total_frames: int,
                          clip_len: int = 16,
                          num_clips: int = 2) -> np.ndarray:
    """Frame indices of VideoMAE's SSV2 test views.

    Args:
        total_frames (int): Frames in the video, at least 1.
        clip_len (int): Frames per view (VideoMAE's ``num_segment``).
            Defaults to 16.
        num_clips (int): 2 for VideoMAE's two temporal views, 1 for the
            first of them. Defaults to 2.

    Returns:
        np.ndarray: ``(num_clips, clip_len)`` int64 indices from 0.
    """
    tick = total_frames / float(clip_len)
    # tick * x first, then the half tick added: the order of VideoMAE's
    # float operations, so truncation lands on the same frame.
    offsets = np.array([0.0, tick / 2.0])[:num_clips, None]  # (num_clips, 1)
    positions = tick * np.arange(clip_len)[None, :] + offsets  # (nc, T)
    return positions.astype(np.int64)


def videomae_kinetics_indices(total_frames: int,
                              clip_len: int = 16,
                              frame_interval: int = 4,
                              num_clips: int = 5) -> np.ndarray:
    """Frame indices of VideoMAE's Kinetics test views.

    Args:
        total_frames (int): Frames in the video, at least 1.
        clip_len (int): Frames per view. Defaults to 16.
        frame_interval (int): VideoMAE's ``frame_sample_rate``. Defaults
            to 4.
        num_clips (int): VideoMAE's ``test_num_segment``; 1 gives the clip
            midway between its first and last views. Defaults to 5.

    Returns:
        np.ndarray: ``(num_clips, clip_len)`` int64 indices from 0.
    """
    grid_len = -(-total_frames // frame_interval)  # frames on the grid
    padded_len = max(grid_len, clip_len)
    if num_clips == 1:
        starts = np.array([int((padded_len - clip_len) / 2.0)])
    else:
        step = max((padded_len - clip_len) / float(num_clips - 1), 0)
        starts = (np.arange(num_clips) * step).astype(np.int64)
    positions = starts[:, None] + np.arange(clip_len)[None, :]  # (nc, T)
    # Past the grid's end VideoMAE repeats its last frame.
    return frame_interval * np.minimum(positions, grid_len - 1)


def videomae_resized_shape(height: int, width: int,
                           short_side: int) -> Tuple[int, int]:
    """(height, width) after VideoMAE's test resize.

    Args:
        height (int): Frame height.
        width (int): Frame width.
        short_side (int): Target of the short side.

    Returns:
        tuple[int, int]: The new (height, width).
    """
    if min(height, width) == short_side:
        return height, width
    if width < height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def videomae_three_crop_boxes(height: int, width: int,
                              crop_size: int) -> np.ndarray:
    """VideoMAE's three test crops of a frame whose short side is the crop.

    Args:
        height (int): Frame height.
        width (int): Frame width.
        crop_size (int): The crop's side, equal to ``min(height, width)``.

    Returns:
        np.ndarray: ``(3, 4)`` boxes ``[x1, y1, x2, y2]``: left (top),
        centre, right (bottom); a square frame is cut along its height.
    """
    starts = (np.arange(3) * ((max(height, width) - crop_size) / 2.0)).astype(
        np.int64)  # (3,)
    ends = starts + crop_size
    zeros = np.zeros_like(starts)
    if height >= width:
        return np.stack([zeros, starts, zeros + width, ends], axis=1)
    return np.stack([starts, zeros, ends, zeros + height], axis=1)


def _write_views(results: Dict, inds: np.ndarray, clip_len: int,
                 frame_interval: Optional[int], num_clips: int) -> Dict:
    """Store (num_clips, clip_len) frame indices as MMAction2's samplers do."""
    results['frame_inds'] = (inds.reshape(-1) +
                             results['start_index']).astype(np.int32)
    results['clip_len'] = clip_len
    results['frame_interval'] = frame_interval
    results['num_clips'] = num_clips
    return results


@TRANSFORMS.register_module()
class VideoMAESSV2Sample(BaseTransform):
    """VideoMAE's Something-Something V2 test frames (``ssv2.py``).

    Required keys: ``total_frames``, ``start_index``. Added keys:
    ``frame_inds``, ``clip_len``, ``frame_interval`` (None), ``num_clips``,
    as MMAction2's ``UniformSample`` writes them.

    Args:
        clip_len (int): Frames per view. Defaults to 16.
        num_clips (int): 2 for VideoMAE's two temporal views, 1 for the first
            of them. Defaults to 2.
        test_mode (bool): Must be True: only the test views exist. Defaults
            to True.
    """

    def __init__(self,
                 clip_len: int = 16,
                 num_clips: int = 2,
                 test_mode: bool = True) -> None:
        name = type(self).__name__
        _check_positive(name, 'clip_len', clip_len)
        if num_clips not in (1, 2):
            raise ValueError(
                f'{name}: num_clips={num_clips!r}, but VideoMAE\'s SSV2 test '
                'has 2 temporal views (1 keeps the first). Use num_clips=2 '
                'or 1, or UniformSample for other view counts.')
        _check_test_mode(name, test_mode)
        self.clip_len = clip_len
        self.num_clips = num_clips
        self.test_mode = test_mode

    def transform(self, results: Dict) -> Dict:
        """Write the views' frame indices into ``results``.

        Args:
            results (dict): The pipeline's dict.

        Returns:
            dict: ``results`` with the sampling keys.
        """
        total = _num_frames(type(self).__name__, results)
        inds = videomae_ssv2_indices(total, self.clip_len, self.num_clips)
        return _write_views(results, inds, self.clip_len, None,
                            self.num_clips)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(clip_len={self.clip_len}, '
                f'num_clips={self.num_clips}, test_mode={self.test_mode})')


@TRANSFORMS.register_module()
class VideoMAEKineticsSample(BaseTransform):
    """VideoMAE's Kinetics test frames (``kinetics.py``).

    Required keys: ``total_frames``, ``start_index``. Added keys:
    ``frame_inds``, ``clip_len``, ``frame_interval``, ``num_clips``, as
    MMAction2's ``SampleFrames`` writes them.

    Args:
        clip_len (int): Frames per view. Defaults to 16.
        frame_interval (int): Step between sampled frames. Defaults to 4.
        num_clips (int): Temporal views; 1 gives the clip midway between
            the first and the last views. Defaults to 5.
        test_mode (bool): Must be True: only the test views exist. Defaults
            to True.
    """

    def __init__(self,
                 clip_len: int = 16,
                 frame_interval: int = 4,
                 num_clips: int = 5,
                 test_mode: bool = True) -> None:
        name = type(self).__name__
        _check_positive(name, 'clip_len', clip_len)
        _check_positive(name, 'frame_interval', frame_interval)
        _check_positive(name, 'num_clips', num_clips)
        _check_test_mode(name, test_mode)
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.num_clips = num_clips
        self.test_mode = test_mode

    def transform(self, results: Dict) -> Dict:
        """Write the views' frame indices into ``results``.

        Args:
            results (dict): The pipeline's dict.

        Returns:
            dict: ``results`` with the sampling keys.
        """
        total = _num_frames(type(self).__name__, results)
        inds = videomae_kinetics_indices(total, self.clip_len,
                                         self.frame_interval, self.num_clips)
        return _write_views(results, inds, self.clip_len,
                            self.frame_interval, self.num_clips)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(clip_len={self.clip_len}, '
                f'frame_interval={self.frame_interval}, '
                f'num_clips={self.num_clips}, test_mode={self.test_mode})')


@TRANSFORMS.register_module()
class VideoMAEResize(BaseTransform):
    """VideoMAE's test resize: short side to ``short_side``, long truncated.

    Required keys: ``imgs``, ``img_shape``. Modified keys: ``imgs``,
    ``img_shape``, ``scale_factor``.

    Args:
        short_side (int): Target of the short side. Defaults to 224.
    """

    def __init__(self, short_side: int = 224) -> None:
        _check_positive(type(self).__name__, 'short_side', short_side)
        self.short_side = short_side

    def transform(self, results: Dict) -> Dict:
        """Resize every frame (bilinear, OpenCV as in VideoMAE).

        Args:
            results (dict): The pipeline's dict.

        Returns:
            dict: ``results`` with the resized frames.
        """
        img_h, img_w = results['img_shape']
        new_h, new_w = videomae_resized_shape(img_h, img_w, self.short_side)
        if (new_h, new_w) != (img_h, img_w):
            results['imgs'] = [
                cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
                for img in results['imgs']
            ]
        factor = np.array([new_w / img_w, new_h / img_h], dtype=np.float32)
        results['scale_factor'] = results.get(
            'scale_factor', np.ones(2, dtype=np.float32)) * factor
        results['img_shape'] = (new_h, new_w)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(short_side={self.short_side})'


@TRANSFORMS.register_module()
class VideoMAEThreeCrop(BaseTransform):
    """VideoMAE's three test crops along the long side.

    Required keys: ``imgs``. Modified keys: ``imgs``, ``crop_bbox``,
    ``img_shape``. The output is laid out as MMAction2's ``ThreeCrop``
    writes it (all frames of crop 0, then crop 1, then crop 2), so
    ``FormatShape`` makes ``3 * num_clips`` views.

    Args:
        crop_size (int): Side of the square crops; the frames' short side
            must already be this (``VideoMAEResize(short_side=crop_size)``).
            Defaults to 224.
    """

    def __init__(self, crop_size: int = 224) -> None:
        _check_positive(type(self).__name__, 'crop_size', crop_size)
        self.crop_size = crop_size

    def transform(self, results: Dict) -> Dict:
        """Cut the three crops.

        Args:
            results (dict): The pipeline's dict.

        Returns:
            dict: ``results`` with ``3 x`` as many frames.
        """
        imgs: List[np.ndarray] = results['imgs']
        img_h, img_w = imgs[0].shape[:2]
        if min(img_h, img_w) != self.crop_size:
            raise ValueError(
                f'{type(self).__name__}(crop_size={self.crop_size}) needs '
                f'frames whose short side is {self.crop_size}, got '
                f'{img_h}x{img_w} (HxW) for video '
                f'{results.get("filename", "<unnamed>")!r}. Put '
                f'VideoMAEResize(short_side={self.crop_size}) before it.')
        boxes = videomae_three_crop_boxes(img_h, img_w, self.crop_size)
        results['imgs'] = [
            img[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes for img in imgs
        ]
        results['crop_bbox'] = np.repeat(boxes, len(imgs), axis=0)
        results['img_shape'] = (self.crop_size, self.crop_size)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop_size={self.crop_size})'


def single_view_pipeline(cfg) -> List[dict]:
    """The config's test pipeline, reduced to 1 clip x 1 center crop.

    Args:
        cfg (Config): A test config with ``test_dataloader`` (or
            ``test_pipeline``).

    Returns:
        list[dict]: Transform configs.
    """
    loader = cfg.get('test_dataloader')
    if loader is not None:
        steps = loader['dataset']['pipeline']
    else:
        steps = cfg.get('test_pipeline')
    if not steps:
        raise ValueError('the config has no test pipeline: neither '
                         'test_dataloader.dataset.pipeline nor test_pipeline.')
    out = []
    for step in copy.deepcopy(list(steps)):
        step = dict(step)
        kind = step.get('type')
        if kind in SAMPLER_TYPES:
            step['num_clips'] = 1
        if kind in MULTI_CROP_TYPES:
            step = dict(type='CenterCrop', crop_size=step['crop_size'])
        out.append(step)
    return out
