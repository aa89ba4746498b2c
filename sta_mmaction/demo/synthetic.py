"""Generated clips in Kinetics-400 format, for running without any data.

Each class is one kind of motion of a textured object over a textured,
static background: a square sliding sideways, a disc circling, a bar of
stripes falling. Position, speed, size, colours and textures vary with the
seed, so no two clips are alike. The clips are written as mp4 (``mp4v``)
with OpenCV and read back by MMAction2's decord pipeline like any K400
video; the annotation file has K400's ``<video> <label>`` lines.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar, mkdir_or_exist

from ..datasets.synthetic_motion import write_clip

#: Class names, in label order.
CLASSES = ('square_sliding', 'disc_circling', 'stripes_falling')

#: The annotation file's name in a K400-format folder.
ANN_FILE = 'kinetics400_val_list_videos.txt'


def _texture(rng: np.random.Generator, shape: Tuple[int, int],
             scale: int) -> np.ndarray:
    """(H, W, 3) float texture in [0, 1]: noise blurred at ``scale`` px."""
    h, w = shape
    small = rng.random((max(h // scale, 2), max(w // scale, 2), 3))
    big = cv2.resize(
        small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 1)


def _object_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float, a bright checkerboard tinted by the seed."""
    cell = max(size // 6, 2)
    yy, xx = np.mgrid[:size, :size]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32)  # (S, S)
    tint = rng.uniform(0.4, 1.0, size=3).astype(np.float32)
    return board[..., None] * tint + (1 - board[..., None]) * tint[::-1] * .3


def render_clip(
    kind: str,
    seed: int,
    num_frames: int = 64,
    size: Tuple[int, int] = (320, 240)) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of one generated clip.

    Args:
        kind (str): One of :data:`CLASSES`.
        seed (int): Seed of positions, speeds, colours and textures.
        num_frames (int): Frames. Defaults to 64, enough for one 16x4
            VideoMAE clip.
        size (tuple[int]): ``(width, height)``. Defaults to (320, 240).
    """
    if kind not in CLASSES:
        raise ValueError(f'kind={kind!r} is not a generated class; choose '
                         f'one of {CLASSES}.')
    w, h = size
    rng = np.random.default_rng(seed)
    background = _texture(rng, (h, w), scale=int(rng.integers(12, 40)))
    background = 0.25 + 0.35 * background  # muted, so the object stands out
    side = int(rng.integers(h // 5, h // 3))
    obj = _object_texture(rng, side)
    frames = np.empty((num_frames, h, w, 3), dtype=np.uint8)
    phase = rng.uniform(0, 2 * np.pi)
    for t in range(num_frames):
        frame = background.copy()
        s = t / max(num_frames - 1, 1)  # 0 -> 1 over the clip
        if kind == 'square_sliding':
            x = int(s * (w - side))
            y = int((h - side) * (0.5 + 0.3 * np.sin(phase)))
            frame[y:y + side, x:x + side] = obj
        elif kind == 'disc_circling':
            radius = 0.3 * min(h, w)
            angle = phase + 2 * np.pi * s
            cx = int(w / 2 + radius * np.cos(angle))
            cy = int(h / 2 + radius * np.sin(angle))
            mask = np.zeros((h, w), np.uint8)
            cv2.circle(mask, (cx, cy), side // 2, 1, -1)
            tex = cv2.resize(obj, (w, h), interpolation=cv2.INTER_NEAREST)
            frame[mask > 0] = tex[mask > 0]
        else:  # stripes_falling
            band = max(side // 2, 8)
            y = int(s * (h + band)) - band
            stripes = ((np.arange(w) // max(side // 8, 2)) % 2).astype(
                np.float32)[None, :, None] * obj[0, 0]
            y0, y1 = max(y, 0), min(y + band, h)
            if y1 > y0:
                frame[y0:y1] = stripes
        frames[t] = (frame * 255).astype(np.uint8)
    return frames


def make_k400_set(root: str,
                  num_clips_per_class: int = 2,
                  classes: Optional[Sequence[str]] = None,
                  num_frames: int = 64,
                  size: Tuple[int, int] = (320, 240),
                  seed: int = 0) -> Dict:
    """Generate a tiny Kinetics-400-format test set under ``root``.

    Writes ``root/videos_val/<class>_<i>.mp4`` and ``root/`` +
    :data:`ANN_FILE`. Clips already there are reused.

    Args:
        root (str): Output folder.
        num_clips_per_class (int): Clips of each class. Defaults to 2.
        classes (Sequence[str], optional): Classes to generate. Defaults to
            None, all of :data:`CLASSES`; the label is the index in
            :data:`CLASSES`.
        num_frames (int): Frames per clip. Defaults to 64.
        size (tuple[int]): ``(width, height)``. Defaults to (320, 240).
        seed (int): Base seed. Defaults to 0.

    Returns:
        dict: ``ann_file``, ``video_root`` and ``videos`` (list of
        ``(file name, label)``).
    """
    if num_clips_per_class < 1:
        raise ValueError(f'num_clips_per_class={num_clips_per_class} must be '
                         '>= 1.')
    classes = list(classes or CLASSES)
    for kind in classes:
        if kind not in CLASSES:
            raise ValueError(f'class {kind!r} is not a generated class; '
                             f'choose from {CLASSES}.')
    video_root = osp.join(root, 'videos_val')
    mkdir_or_exist(video_root)
    videos: List[Tuple[str, int]] = []
    todo = [(kind, i) for i in range(num_clips_per_class) for kind in classes]
    print_log(
        f'Generating {len(todo)} clips ({len(classes)} classes x '
        f'{num_clips_per_class}) of {num_frames} frames {size[0]}x{size[1]} '
        f'in {video_root}',
        logger='current')
    bar = ProgressBar(len(todo))
    for kind, i in todo:
        label = CLASSES.index(kind)
        name = f'{kind}_{i}.mp4'
        path = osp.join(video_root, name)
        if not osp.isfile(path):
            frames = render_clip(kind, seed * 1000 + label * 100 + i,
                                 num_frames, size)
            write_clip(path, frames)
        videos.append((name, label))
        bar.update()
    bar.file.write('\n')
    ann_file = osp.join(root, ANN_FILE)
    with open(ann_file, 'w') as f:
        f.writelines(f'{name} {label}\n' for name, label in videos)
    return dict(ann_file=ann_file, video_root=video_root, videos=videos)
