"""Clips whose class evidence is sparse in time, over real footage.

The *footage* set of the accuracy benchmark: the background is a crop of a
frame of a real clip (read at run time from a folder such as
``../shared/data``; nothing of it is written into the repository), static or
panning slowly, so most tokens repeat from one temporal slice to the next as
in real video; the class is the shape of one object
(:func:`sta_mmaction.synthetic.render_clip`, its shape, size, colour and
path), drawn in only 2 or 3 consecutive temporal slices of the 8. A
reduction that keeps what changes in time can keep the evidence; one that
samples uniformly keeps a share of it.
"""
import glob
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from sta_mmaction.synthetic import render_clip

#: Video files read as backgrounds.
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov')
#: Frames taken from each source clip, evenly spaced.
FRAMES_PER_SOURCE = 8
#: Frames of one temporal slice (the models' tubelet) and slices a clip has
#: the object in, (fewest, most).
TUBELET = 2
EVIDENCE_SLICES = (2, 3)
#: Panning speed in pixels per frame, (slowest, fastest); half the clips
#: are static.
PAN_SPEED = (0.3, 1.0)


def footage_sources(folder: str) -> List[str]:
    """Sorted video files directly in ``folder`` (see VIDEO_EXTENSIONS)."""
    return sorted(
        f for f in glob.glob(osp.join(folder, '*'))
        if f.lower().endswith(VIDEO_EXTENSIONS) and osp.isfile(f))


def load_backgrounds(folder: str, side: int) -> Tuple[np.ndarray, Dict]:
    """(K, H, W, 3) uint8 frames of the clips in ``folder``, and a record.

    Each frame is resized so that its short side is ``1.25 * side``, which
    leaves room to pan a ``side`` x ``side`` window. The record (file names,
    sizes and frame indices) goes into the set's ``meta.json``, so another
    folder gives another set.

    Raises:
        ValueError: ``folder`` holds no video that decord can read.
    """
    import decord
    short = int(round(1.25 * side))
    frames, record = [], []
    for path in footage_sources(folder):
        try:
            reader = decord.VideoReader(path)
        except (RuntimeError, decord.DECORDError):
            continue  # not a video decord reads; the record says which
        idx = np.linspace(0, len(reader) - 1, FRAMES_PER_SOURCE).astype(int)
        for frame in reader.get_batch(list(idx)).asnumpy():
            h, w = frame.shape[:2]
            scale = short / min(h, w)
            frames.append(
                cv2.resize(frame, (max(short, round(w * scale)),
                                   max(short, round(h * scale))),
                           interpolation=cv2.INTER_AREA)[:short, :short])
        record.append(
            dict(file=osp.basename(path), bytes=osp.getsize(path),
                 frames=[int(i) for i in idx]))
    if not frames:
        raise ValueError(f'footage folder {folder!r} holds no video decord '
                         f'can read (looked for {VIDEO_EXTENSIONS}).')
    return np.stack(frames), dict(sources=record, short_side=short)


def _pan(rng: np.random.Generator, room: int,
         num_frames: int) -> np.ndarray:
    """(T, 2) integer top-left corners (x, y) of a static or panning crop."""
    if rng.random() < 0.5:
        start = rng.integers(0, room + 1, size=2)
        return np.repeat(start[None], num_frames, 0)
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(*PAN_SPEED)
    step = speed * np.array([np.cos(angle), np.sin(angle)])  # (2, )
    travel = step * (num_frames - 1)  # (2, )
    low = np.maximum(0, -travel)
    high = np.minimum(room, room - travel)
    start = rng.uniform(low, high)  # the whole path stays in the frame
    path = start + step * np.arange(num_frames)[:, None]  # (T, 2)
    return np.rint(path).astype(int)


def render_footage_clip(kind: str, seed: int, backgrounds: np.ndarray,
                        num_frames: int = 16, side: int = 128,
                        noise: float = 2.0) -> Tuple[np.ndarray, np.ndarray]:
    """(T, S, S, 3) uint8 frames and the (T, S, S) bool object mask.

    Args:
        kind (str): The object's shape, one of
            :data:`sta_mmaction.synthetic.CLASSES`.
        seed (int): Seed of everything random in the clip.
        backgrounds (np.ndarray): (K, H, W, 3) frames of
            :func:`load_backgrounds`, with ``H, W >= side``.
        num_frames (int): Frames, a multiple of :data:`TUBELET` with room
            for the object's slices. Defaults to 16 (8 slices).
        side (int): Frame side. Defaults to 128.
        noise (float): Per-frame pixel noise on the background (the
            object's comes from ``render_clip``). Defaults to 2.0.

    Raises:
        ValueError: ``num_frames`` is not a multiple of the tubelet or too
            short, or the backgrounds are smaller than ``side``.
    """
    slices = num_frames // TUBELET
    if num_frames % TUBELET or slices < EVIDENCE_SLICES[1]:
        raise ValueError(f'num_frames={num_frames} must be a multiple of '
                         f'{TUBELET} with at least {EVIDENCE_SLICES[1]} '
                         'slices.')
    room = min(backgrounds.shape[1:3]) - side
    if room < 0:
        raise ValueError(f'backgrounds of {backgrounds.shape[1:3]} are '
                         f'smaller than side={side}.')
    rng = np.random.default_rng([seed, 1])  # not render_clip's stream
    source = backgrounds[rng.integers(len(backgrounds))]  # (H, W, 3)
    corners = _pan(rng, room, num_frames)  # (T, 2)
    shown = int(rng.integers(EVIDENCE_SLICES[0], EVIDENCE_SLICES[1] + 1))
    first = int(rng.integers(0, slices - shown + 1))
    obj, mask = render_clip(kind, seed, num_frames, side, noise,
                            with_mask=True)  # (T, S, S, 3), (T, S, S)
    off = np.ones(num_frames, bool)
    off[first * TUBELET:(first + shown) * TUBELET] = False
    mask[off] = False
    frames = np.empty_like(obj)
    for t, (x, y) in enumerate(corners):
        frame = source[y:y + side, x:x + side].astype(np.float32)
        frame += rng.normal(0, noise, frame.shape)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        frame[mask[t]] = obj[t][mask[t]]
        frames[t] = frame
    return frames, mask


def evidence_slices(mask: np.ndarray,
                    tubelet: int = TUBELET) -> Sequence[int]:
    """Temporal slices where the (T, S, S) mask has any object pixel."""
    t = mask.shape[0] // tubelet
    per_slice = mask[:t * tubelet].reshape(t, -1).any(1)
    return [int(i) for i in np.flatnonzero(per_slice)]
