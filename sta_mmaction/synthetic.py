"""Generated clips of moving objects: the one synthetic-video generator.

The demo, the tests and ``projects/synthetic_accuracy`` draw their videos
here; :func:`make_k400_set` lays shape clips out as a Kinetics-400 folder.

*Shape* clips (:func:`render_clip`): a static textured background with one
bouncing object whose shape is the class (:data:`CLASSES`), so most tokens
repeat from slice to slice. *Motion* clips (:func:`render_motion_clip`): the
same textured disc in every class, whose motion is the class
(:data:`MOTION_CLASSES`), on a torus; clips of one seed differ only in
motion, and a band of the background slides whatever the class.

Every clip comes from one seeded generator, so it is the same on every
machine, and is written as an ``mp4v`` mp4. Plain numpy and OpenCV.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: Class names of the shape clips (the object's shape), in label order.
CLASSES = ('square', 'ring', 'cross', 'x', 'triangle', 'bars')

#: Class names of the motion clips (the object's motion), in label order.
MOTION_CLASSES = ('right', 'left', 'down', 'up', 'clockwise',
                  'counterclockwise')

#: Share of the frame the motion clips' disc covers, (least, most).
MOTION_OBJECT_SHARE = (0.11, 0.17)


def _texture(rng: np.random.Generator, side: int, scale: float) -> np.ndarray:
    """(side, side) float32 noise in [0, 1], smooth at ``scale`` pixels."""
    cells = max(int(round(side / scale)), 2)
    small = rng.random((cells, cells)).astype(np.float32)
    big = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    big -= big.min()
    return big / max(float(big.max()), 1e-6)


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """(side, side, 3) float32 in [0, 1]: a muted two-scale texture.

    Nearly grey, with the same range for every clip, so the class, not the
    background colour, dominates what varies between clips.
    """
    coarse = _texture(rng, side, rng.uniform(16, 40))
    fine = _texture(rng, side, rng.uniform(3, 6))
    tex = 0.65 * coarse + 0.35 * fine  # (S, S)
    tint = rng.uniform(-0.03, 0.03, size=3).astype(np.float32)
    dark = np.float32(rng.uniform(0.15, 0.25)) + tint
    light = np.float32(rng.uniform(0.45, 0.55)) + tint
    return dark + tex[..., None] * (light - dark)  # (S, S, 3)


def _shape_mask(shape: str, size: int) -> np.ndarray:
    """(size, size) bool mask of an object."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32) - (size - 1) / 2
    radius = np.sqrt(xx**2 + yy**2)
    half = size / 2
    if shape == 'square':
        return np.ones((size, size), bool)
    if shape == 'disc':
        return radius <= half
    if shape == 'ring':
        return (radius <= half) & (radius >= half * 0.55)
    if shape == 'cross':
        arm = size / 6
        return (np.abs(xx) <= arm) | (np.abs(yy) <= arm)
    if shape == 'x':
        arm = size / 6 * np.sqrt(2)
        return (np.abs(xx - yy) <= arm) | (np.abs(xx + yy) <= arm)
    if shape == 'triangle':  # pointing up
        return np.abs(xx) <= (yy + half) / 2
    if shape == 'bars':  # two horizontal bars, like '='
        return np.abs(np.abs(yy) - size / 4) <= size / 8
    raise ValueError(f'shape={shape!r} is not a generated shape; choose one '
                     "of ('square', 'disc', 'ring', 'cross', 'x', "
                     "'triangle', 'bars').")


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated RGB colour in [0, 1], from a random hue."""
    hsv = np.array([[[rng.uniform(0, 180), 200, 255]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def _trajectory(kind: str, rng: np.random.Generator, num_frames: int,
                side: int, size: int) -> np.ndarray:
    """(T, 2) top-left corners (x, y) of the object in every frame."""
    room = side - size  # positions 0 .. room keep the object inside
    speed = rng.uniform(3.5, 5) * side / 128  # pixels per frame
    angle = rng.uniform(0, 2 * np.pi)
    pos = rng.uniform(0, room, size=2)
    vel = speed * np.array([np.cos(angle), np.sin(angle)])
    xy = np.empty((num_frames, 2))
    for t in range(num_frames):
        xy[t] = pos
        pos = pos + vel
        for k in range(2):  # bounce off the borders
            if pos[k] < 0 or pos[k] > room:
                vel[k] = -vel[k]
                pos[k] = np.clip(pos[k], 0, room)
    return xy


def render_clip(kind: str, seed: int, num_frames: int = 20, side: int = 128,
                noise: float = 2.0, with_mask: bool = False):
    """(T, S, S, 3) uint8 RGB frames of one generated clip.

    Args:
        kind (str): One of :data:`CLASSES`.
        seed (int): Seed of everything random in the clip.
        num_frames (int): Frames. Defaults to 20 (16 plus room for jitter).
        side (int): Frame width and height in pixels. Defaults to 128.
        noise (float): Standard deviation of the per-frame Gaussian pixel
            noise (0-255 units), as a camera's. Defaults to 2.0.
        with_mask (bool): Also return the (T, S, S) bool object mask, True
            where the object is drawn; the frames are the same either way.
            Defaults to False.
    """
    if kind not in CLASSES:
        raise ValueError(f'kind={kind!r} is not a generated class; choose '
                         f'one of {CLASSES}.')
    rng = np.random.default_rng(seed)
    background = _background(rng, side)  # (S, S, 3)
    size = int(rng.integers(side * 7 // 32, side * 9 // 32 + 1))
    mask = _shape_mask(kind, size)  # (s, s)
    colour = _bright_colour(rng)  # (3, )
    corners = np.rint(_trajectory(kind, rng, num_frames, side,
                                  size)).astype(int)  # (T, 2)
    frames = np.empty((num_frames, side, side, 3), np.uint8)
    masks = np.zeros((num_frames, side, side), bool)  # (T, S, S)
    for t, (x, y) in enumerate(corners):
        frame = background.copy()
        patch = frame[y:y + size, x:x + size]  # (s, s, 3) view
        patch[mask] = colour
        masks[t, y:y + size, x:x + size] = mask
        frame = frame * 255 + rng.normal(0, noise, frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return (frames, masks) if with_mask else frames


def motion_path(kind: str, rng: np.random.Generator, num_frames: int,
                side: int) -> np.ndarray:
    """(T, 2) centre (x, y) of a motion clip's object, wrapped to the frame.

    Every class draws the same numbers in the same order.
    """
    if kind not in MOTION_CLASSES:
        raise ValueError(f'kind={kind!r} is not a motion class; choose one '
                         f'of {MOTION_CLASSES}.')
    start = rng.uniform(0, side, size=2)
    speed = rng.uniform(2.5, 4) * side / 128  # pixels per frame
    radius = rng.uniform(0.14, 0.22) * side
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(num_frames, dtype=np.float64)[:, None]  # (T, 1)
    steps = dict(right=(1, 0), left=(-1, 0), down=(0, 1), up=(0, -1))
    if kind in steps:
        xy = start + speed * t * np.array(steps[kind], np.float64)
    else:
        # y points down, so a growing angle turns clockwise on screen
        sign = 1 if kind == 'clockwise' else -1
        angle = phase + sign * speed / radius * t[:, 0]  # (T, )
        ring = np.stack([np.cos(angle), np.sin(angle)], 1)  # (T, 2)
        xy = start + radius * (ring - ring[0])
    return np.mod(xy, side)


def _disc_layer(side: int, diameter: float) -> np.ndarray:
    """(side, side) bool disc of ``diameter`` at pixel (0, 0) on a torus."""
    d = np.minimum(np.arange(side), side - np.arange(side)).astype(
        np.float32)  # distance to 0 on the torus
    return d[:, None]**2 + d[None, :]**2 <= (diameter / 2)**2


def render_motion_clip(kind: str, seed: int, num_frames: int = 20,
                       side: int = 128, noise: float = 2.0) -> np.ndarray:
    """(T, S, S, 3) uint8 RGB frames of one motion clip.

    Args:
        kind (str): One of :data:`MOTION_CLASSES`.
        seed (int): Seed of everything random in the clip; clips of one
            seed differ only in the object's motion.
        num_frames (int): Frames. Defaults to 20.
        side (int): Frame width and height in pixels. Defaults to 128.
        noise (float): Per-frame pixel noise, as in :func:`render_clip`.
            Defaults to 2.0.
    """
    if kind not in MOTION_CLASSES:
        raise ValueError(f'kind={kind!r} is not a motion class; choose one '
                         f'of {MOTION_CLASSES}.')
    rng = np.random.default_rng(seed)
    background = _background(rng, side)  # (S, S, 3)
    band = rng.integers(0, side)  # first row (or column) of the moving band
    band_axis = int(rng.integers(0, 2))  # 0: rows slide sideways, 1: columns
    band_speed = rng.uniform(0.5, 2) * rng.choice([-1, 1]) * side / 128
    rows = (band + np.arange(side // 4)) % side  # (S / 4, )
    low, high = MOTION_OBJECT_SHARE
    share = rng.uniform(low, high)
    disc = _disc_layer(side, 2 * side * np.sqrt(share / np.pi))  # (S, S)
    colour = _bright_colour(rng)  # (3, )
    shade = 0.75 + 0.25 * _texture(rng, side, rng.uniform(4, 8))  # (S, S)
    centres = np.rint(motion_path(kind, rng, num_frames, side)).astype(int)
    frames = np.empty((num_frames, side, side, 3), np.uint8)
    for t, (x, y) in enumerate(centres):
        frame = background.copy()
        shift = int(round(band_speed * t))
        if band_axis == 0:
            frame[rows] = np.roll(background[rows], shift, axis=1)
        else:
            frame[:, rows] = np.roll(background[:, rows], shift, axis=0)
        mask = np.roll(disc, (y, x), axis=(0, 1))  # (S, S)
        # the texture moves with the object, as a surface would
        skin = np.roll(shade, (y, x), axis=(0, 1))[mask]  # (n, )
        frame[mask] = skin[:, None] * colour
        frame = frame * 255 + rng.normal(0, noise, frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_clip(path: str, frames: np.ndarray, fps: float = 25.) -> str:
    """Write (T, H, W, 3) RGB frames as an ``mp4v`` mp4; returns ``path``."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (w, h))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write an mp4v video to {path}.')
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_synthetic_video(path: str, seed: int, kind: Optional[str] = None,
                          num_frames: int = 20, side: int = 64) -> str:
    """Render one clip and write it to ``path``; returns ``path``.

    Args:
        path (str): The mp4 file to write.
        seed (int): Seed of the clip.
        kind (str, optional): One of :data:`CLASSES`. Defaults to None,
            ``CLASSES[seed % len(CLASSES)]``.
        num_frames (int): Frames. Defaults to 20.
        side (int): Frame width and height in pixels. Defaults to 64.
    """
    kind = CLASSES[seed % len(CLASSES)] if kind is None else kind
    return write_clip(str(path), render_clip(kind, seed, num_frames, side))


#: The demo's classes by default, in label order: three keep it short.
DEMO_CLASSES = CLASSES[:3]

#: The annotation file's name in a Kinetics-400-format folder.
ANN_FILE = 'kinetics400_val_list_videos.txt'


def make_k400_set(root: str, num_clips_per_class: int = 2,
                  classes: Optional[Sequence[str]] = None,
                  num_frames: int = 64, side: int = 240,
                  seed: int = 0) -> Dict:
    """Write a tiny Kinetics-400-format test set of shape clips.

    ``root/videos_val/<class>_<i>.mp4`` and ``root/`` + :data:`ANN_FILE`
    (labels index :data:`CLASSES`); clips already there are reused.

    Args:
        root (str): Output folder.
        num_clips_per_class (int): Clips of each class. Defaults to 2.
        classes (Sequence[str], optional): Classes, from :data:`CLASSES`.
            Defaults to None, :data:`DEMO_CLASSES`.
        num_frames (int): Frames per clip. Defaults to 64.
        side (int): Frame width and height in pixels. Defaults to 240.
        seed (int): Base seed. Defaults to 0.

    Returns:
        dict: ``ann_file``, ``video_root``, ``videos`` (``(name, label)``).
    """
    if num_clips_per_class < 1:
        raise ValueError(f'num_clips_per_class={num_clips_per_class} must be '
                         '>= 1.')
    classes = list(DEMO_CLASSES if classes is None else classes)
    for kind in classes:
        if kind not in CLASSES:
            raise ValueError(f'class {kind!r} is not a generated class; '
                             f'choose from {CLASSES}.')
    video_root = osp.join(root, 'videos_val')
    os.makedirs(video_root, exist_ok=True)
    videos: List[Tuple[str, int]] = []
    for i in range(num_clips_per_class):
        for kind in classes:
            label = CLASSES.index(kind)
            name = f'{kind}_{i}.mp4'
            path = osp.join(video_root, name)
            if not osp.isfile(path):
                write_clip(path, render_clip(
                    kind, seed * 1000 + label * 100 + i, num_frames, side))
            videos.append((name, label))
    ann_file = osp.join(root, ANN_FILE)
    with open(ann_file, 'w') as f:
        f.writelines(f'{name} {label}\n' for name, label in videos)
    return dict(ann_file=ann_file, video_root=video_root, videos=videos)
