"""The labelled sets of generated clips for the accuracy benchmark.

Three sets (:data:`SET_KINDS`): ``'shape'``, one moving object whose shape
is the class over a static textured background, in every frame
(:func:`~sta_mmaction.synthetic.render_clip`), the easy case; ``'footage'``,
the same objects drawn in only 2-3 of the 8 temporal slices over a static
or slowly panning background cut from real clips read at run time
(:mod:`.footage`); and ``'motion'``, one object of the same look in every
class whose motion (direction of a slide, or sense of a circle) is the
class, over a partly moving background
(:func:`~sta_mmaction.synthetic.render_motion_clip`). The module's name
predates the other sets and is kept. It lays a set out as a dataset: train,
val and test splits with disjoint seeds, one folder and one list per split
in MMAction2's ``VideoDataset`` annotation format (``<file> <label>``), the
object masks of the shape and footage clips (:func:`load_masks`), and a
``meta.json`` of the settings, so the same settings give the same set on
every machine.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar, mkdir_or_exist

from sta_mmaction.synthetic import (CLASSES, MOTION_CLASSES, render_clip,
                                    render_motion_clip, write_clip)
from .footage import load_backgrounds, render_footage_clip

#: Set kind -> class names in label order.
SET_KINDS = {
    'shape': CLASSES,
    'motion': MOTION_CLASSES,
    'footage': CLASSES,
}

#: Sets whose clips come with object masks (the class evidence).
MASKED_KINDS = ('shape', 'footage')

#: Seed offset of each split, so that no two splits share a clip.
SPLIT_SEEDS = {'train': 0, 'val': 1_000_000, 'test': 2_000_000}


def ann_file_name(split: str) -> str:
    """Annotation file of a split, relative to the data root."""
    return f'{split}_list_videos.txt'


def set_classes(kind: str) -> Tuple[str, ...]:
    """Class names of the set ``kind``, in label order."""
    if kind not in SET_KINDS:
        raise ValueError(f'kind={kind!r} is not a generated set; choose one '
                         f'of {tuple(SET_KINDS)}.')
    return SET_KINDS[kind]


def mask_file_name(split: str) -> str:
    """Object masks of a split, relative to the data root."""
    return f'{split}_masks.npz'


def load_masks(root: str, split: str) -> Dict[str, np.ndarray]:
    """File name -> (T, S, S) bool object mask of every clip of a split.

    Raises:
        ValueError: The set has no masks (the motion set, or a set written
            before masks were kept).
    """
    path = osp.join(root, mask_file_name(split))
    if not osp.isfile(path):
        raise ValueError(f'{root} has no object masks for {split!r} ({path} '
                         f'is missing); only the {MASKED_KINDS} sets keep '
                         'them.')
    with np.load(path) as packed:
        shape = tuple(int(n) for n in packed['__shape__'])
        size = int(np.prod(shape))
        return {
            name: np.unpackbits(bits, count=size).reshape(shape).astype(bool)
            for name, bits in packed.items() if name != '__shape__'
        }


def _renderer(kind: str, side: int, footage_dir: Optional[str]
              ) -> Tuple[Callable, Dict]:
    """``render(class, seed, num_frames) -> (frames, mask or None)``, and
    what of its source goes into ``meta.json``."""
    if kind == 'shape':
        return (lambda c, seed, t: render_clip(c, seed, t, side,
                                               with_mask=True)), {}
    if kind == 'motion':
        return (lambda c, seed, t: (render_motion_clip(c, seed, t, side),
                                    None)), {}
    if footage_dir is None:
        raise ValueError("kind='footage' needs footage_dir, a folder of "
                         'real clips for the backgrounds.')
    backgrounds, record = load_backgrounds(footage_dir, side)
    return (lambda c, seed, t: render_footage_clip(c, seed, backgrounds, t,
                                                   side)), dict(footage=record)


def make_synthetic_motion(root: str,
                          clips_per_class: Dict[str, int],
                          num_classes: int = len(CLASSES),
                          num_frames: int = 20,
                          side: int = 128,
                          seed: int = 0,
                          force: bool = False,
                          kind: str = 'shape',
                          footage_dir: Optional[str] = None
                          ) -> Dict[str, str]:
    """Generate the set under ``root``, or reuse it if it is already there.

    Writes ``root/<split>/<class>_<i>.mp4``, ``root/<split>_list_videos.txt``
    and, for the :data:`MASKED_KINDS`, ``root/<split>_masks.npz`` for every
    split, and ``root/meta.json`` with the settings. A set whose
    ``meta.json`` records the same settings is reused as it is.

    Args:
        root (str): Output folder.
        clips_per_class (dict): Clips per class of each split, e.g.
            ``dict(train=60, val=20, test=25)``. Splits are ``'train'``,
            ``'val'`` and ``'test'``.
        num_classes (int): Use the first ``num_classes`` classes of the
            set. Defaults to 6, all of either set.
        num_frames (int): Frames per clip. Defaults to 20.
        side (int): Frame side in pixels. Defaults to 128.
        seed (int): Base seed of the whole set. Defaults to 0.
        force (bool): Regenerate even if a matching set exists.
            Defaults to False.
        kind (str): Which set, a key of :data:`SET_KINDS`. Defaults to
            ``'shape'``.
        footage_dir (str, optional): Folder of real clips, the footage
            set's backgrounds (read here, never copied). Defaults to None;
            the footage set needs it.

    Returns:
        dict: ``'<split>'`` -> annotation file, and ``'root'``.
    """
    classes = set_classes(kind)
    if not 2 <= num_classes <= len(classes):
        raise ValueError(f'num_classes={num_classes} must be between 2 and '
                         f'{len(classes)}.')
    for split, count in clips_per_class.items():
        if split not in SPLIT_SEEDS:
            raise ValueError(f'split {split!r} is not one of '
                             f'{tuple(SPLIT_SEEDS)}.')
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f'clips_per_class[{split!r}]={count!r} must be '
                             'an int >= 1.')
    meta = dict(
        kind=kind,
        classes=list(classes[:num_classes]),
        clips_per_class=dict(sorted(clips_per_class.items())),
        num_frames=num_frames,
        side=side,
        seed=seed)
    render, source = _renderer(kind, side, footage_dir)
    meta.update(source)
    out = dict(root=root)
    out.update({s: osp.join(root, ann_file_name(s)) for s in clips_per_class})
    meta_file = osp.join(root, 'meta.json')
    needed = [f for f in out.values() if f != root]
    if kind in MASKED_KINDS:
        needed += [osp.join(root, mask_file_name(s)) for s in clips_per_class]
    if not force and osp.isfile(meta_file) and all(map(osp.isfile, needed)):
        with open(meta_file) as f:
            if json.load(f) == meta:
                print_log(f'Reusing the generated set in {root}',
                          logger='current')
                return out
    if osp.isfile(meta_file):
        os.remove(meta_file)  # half-written sets are never reused
    todo = [(split, label, i)
            for split, count in sorted(clips_per_class.items())
            for label in range(num_classes) for i in range(count)]
    print_log(
        f'Generating {len(todo)} {kind} clips ({num_classes} classes; '
        f'{meta["clips_per_class"]} per class) of {num_frames} frames '
        f'{side}x{side} in {root}',
        logger='current')
    lines: Dict[str, list] = {s: [] for s in clips_per_class}
    masks: Dict[str, Dict[str, np.ndarray]] = {s: {} for s in clips_per_class}
    bar = ProgressBar(len(todo))
    for split, label, i in todo:
        folder = osp.join(root, split)
        mkdir_or_exist(folder)
        name = f'{classes[label]}_{i:04d}.mp4'
        clip_seed = seed * 10_000_000 + SPLIT_SEEDS[split] + label * 10_000 + i
        frames, mask = render(classes[label], clip_seed, num_frames)
        write_clip(osp.join(folder, name), frames)
        if mask is not None:
            masks[split][name] = np.packbits(mask)
        lines[split].append(f'{name} {label}\n')
        bar.update()
    for split, rows in lines.items():
        with open(out[split], 'w') as f:
            f.writelines(rows)
        if masks[split]:
            np.savez_compressed(
                osp.join(root, mask_file_name(split)),
                __shape__=np.array((num_frames, side, side)), **masks[split])
    with open(meta_file, 'w') as f:
        json.dump(meta, f, indent=1)
    return out


def preview(root: str,
            out_file: str,
            split: str = 'val',
            classes: Optional[Sequence[int]] = None,
            frames: Tuple[int, ...] = (0, 6, 13, 19)) -> str:
    """Save a PNG grid of a few frames of the first clip of each class.

    Args:
        root (str): The set's folder.
        out_file (str): PNG to write.
        split (str): Split to show. Defaults to ``'val'``.
        classes (Sequence[int], optional): Labels to show. Defaults to
            None, all in the annotation file.
        frames (tuple[int]): Frame indices to show. Defaults to
            ``(0, 6, 13, 19)``.

    Returns:
        str: ``out_file``.
    """
    import decord
    first: Dict[int, str] = {}
    with open(osp.join(root, ann_file_name(split))) as f:
        for line in f:
            name, label = line.split()
            first.setdefault(int(label), name)
    rows = []
    for label in sorted(first):
        if classes is not None and label not in classes:
            continue
        vr = decord.VideoReader(osp.join(root, split, first[label]))
        idx = [min(i, len(vr) - 1) for i in frames]
        rows.append(np.concatenate(list(vr.get_batch(idx).asnumpy()), 1))
    grid = np.concatenate(rows, 0)
    cv2.imwrite(out_file, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return out_file
