"""VideoMAE's test views (SSV2 and Kinetics-400) as MMAction2 transforms.

The paper's ViT numbers come from VideoMAE's own test loaders (``ssv2.py``,
``kinetics.py`` of MCG-NJU/VideoMAE), whose frames, resize and crops differ
from MMAction2's. These transforms restate VideoMAE's rules:

- :class:`VideoMAESSV2Sample`: ``tick = total_frames / clip_len``; view 0
  takes ``floor(tick * x)``, view 1 ``floor(tick * x + tick / 2)``.
- :class:`VideoMAEKineticsSample`: every ``frame_interval``-th frame from 0
  (``M`` of them), padded with the last up to ``clip_len``; view ``k`` takes
  ``clip_len`` from ``int(k * max(M - clip_len, 0) / (num_clips - 1))``.
  (``SampleFrames`` centres its clips off that grid and loops short videos.)
- :class:`VideoMAEResize`: long side ``int(short_side * long / short)``
  (truncated; ``Resize`` rounds).
- :class:`VideoMAEThreeCrop`: three squares along the long side from
  ``int(k * (long - crop_size) / 2)``, ``k = 0, 1, 2`` (``ThreeCrop`` ends a
  pixel short of the edge when the difference is odd).

With ``num_clips=1``, which VideoMAE does not define, SSV2 gives view 0 and
Kinetics the clip midway between its first and last views.
"""
import copy
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

#: Test-pipeline steps that sample clips (``num_clips``, ``clip_len``).
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


def videomae_ssv2_indices(total_frames: int, clip_len: int = 16,
                          num_clips: int = 2) -> np.ndarray:
    """``(num_clips, clip_len)`` int64 frames of VideoMAE's SSV2 test views.

    Args:
        total_frames (int): Frames in the video, at least 1.
        clip_len (int): Frames per view (``num_segment``). Defaults to 16.
        num_clips (int): 2 views, or 1 for the first. Defaults to 2.
    """
    tick = total_frames / float(clip_len)
    # tick * x first, then the half tick added: the order of VideoMAE's
    # float operations, so truncation lands on the same frame.
    offsets = np.array([0.0, tick / 2.0])[:num_clips, None]  # (num_clips, 1)
    positions = tick * np.arange(clip_len)[None, :] + offsets  # (nc, T)
    return positions.astype(np.int64)


def videomae_kinetics_indices(total_frames: int, clip_len: int = 16,
                              frame_interval: int = 4,
                              num_clips: int = 5) -> np.ndarray:
    """``(num_clips, clip_len)`` int64 frames of VideoMAE's Kinetics views.

    Args:
        total_frames (int): Frames in the video, at least 1.
        clip_len (int): Frames per view. Defaults to 16.
        frame_interval (int): ``frame_sample_rate``. Defaults to 4.
        num_clips (int): ``test_num_segment``; 1 gives the clip midway
            between the first and last views. Defaults to 5.
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
    """(height, width) after VideoMAE's resize of the short side.

    Args:
        height (int): Frame height.
        width (int): Frame width.
        short_side (int): Target of the short side.
    """
    if min(height, width) == short_side:
        return height, width
    if width < height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def videomae_three_crop_boxes(height: int, width: int,
                              crop_size: int) -> np.ndarray:
    """``(3, 4)`` ``[x1, y1, x2, y2]`` boxes of VideoMAE's three crops.

    Left (top), centre, right (bottom); a square frame is cut vertically.

    Args:
        height (int): Frame height.
        width (int): Frame width.
        crop_size (int): The crop's side, equal to ``min(height, width)``.
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

    Reads ``total_frames``, ``start_index``; adds the keys of MMAction2's
    ``UniformSample`` (``frame_interval`` None).

    Args:
        clip_len (int): Frames per view. Defaults to 16.
        num_clips (int): 2 views, or 1 for the first. Defaults to 2.
        test_mode (bool): Must be True (test views only). Defaults to True.
    """

    def __init__(self, clip_len: int = 16, num_clips: int = 2,
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

    Reads ``total_frames``, ``start_index``; adds ``SampleFrames``' keys.

    Args:
        clip_len (int): Frames per view. Defaults to 16.
        frame_interval (int): Step between sampled frames. Defaults to 4.
        num_clips (int): Temporal views; 1 gives the midway clip. Defaults
            to 5.
        test_mode (bool): Must be True (test views only). Defaults to True.
    """

    def __init__(self, clip_len: int = 16, frame_interval: int = 4,
                 num_clips: int = 5, test_mode: bool = True) -> None:
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

    Reads ``imgs``, ``img_shape``; also updates ``scale_factor``.

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

    Sets ``imgs`` (all frames of crop 0, then 1, then 2, as ``ThreeCrop``:
    ``3 * num_clips`` views), ``crop_bbox`` and ``img_shape``.

    Args:
        crop_size (int): Side of the square crops, already the frames'
            short side (``VideoMAEResize``). Defaults to 224.
    """

    def __init__(self, crop_size: int = 224) -> None:
        _check_positive(type(self).__name__, 'crop_size', crop_size)
        self.crop_size = crop_size

    def transform(self, results: Dict) -> Dict:
        """Cut the three crops: ``3 x`` as many frames.

        Args:
            results (dict): The pipeline's dict.
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
    """The config's test pipeline as transform configs, 1 clip x 1 crop.

    Args:
        cfg (Config): A test config with ``test_dataloader`` (or
            ``test_pipeline``).
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
