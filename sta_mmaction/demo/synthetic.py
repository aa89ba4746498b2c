"""Generated clips in Kinetics-400 format, for running without any data.

The clips are :mod:`sta_mmaction.synthetic`'s (one moving object over a
static textured background, the object's shape is the class), long enough
for VideoMAE's 16 x 4 sampling, listed in K400's ``<video> <label>`` format
and read back by MMAction2's decord pipeline like any K400 video.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.utils import ProgressBar, mkdir_or_exist

from ..synthetic import CLASSES, render_clip, write_clip

#: The demo's classes by default, in label order: three keep it short.
DEMO_CLASSES = CLASSES[:3]

#: The annotation file's name in a K400-format folder.
ANN_FILE = 'kinetics400_val_list_videos.txt'


def make_k400_set(root: str,
                  num_clips_per_class: int = 2,
                  classes: Optional[Sequence[str]] = None,
                  num_frames: int = 64,
                  side: int = 240,
                  seed: int = 0) -> Dict:
    """Generate a tiny Kinetics-400-format test set under ``root``.

    Writes ``root/videos_val/<class>_<i>.mp4`` and ``root/`` +
    :data:`ANN_FILE`. Clips already there are reused.

    Args:
        root (str): Output folder.
        num_clips_per_class (int): Clips of each class. Defaults to 2.
        classes (Sequence[str], optional): Classes to generate, from
            :data:`sta_mmaction.synthetic.CLASSES`; the label is the index
            there. Defaults to None, :data:`DEMO_CLASSES`.
        num_frames (int): Frames per clip. Defaults to 64, one 16 x 4
            VideoMAE clip.
        side (int): Frame width and height in pixels. Defaults to 240,
            Kinetics' short side.
        seed (int): Base seed. Defaults to 0.

    Returns:
        dict: ``ann_file``, ``video_root`` and ``videos`` (list of
        ``(file name, label)``).
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
    mkdir_or_exist(video_root)
    videos: List[Tuple[str, int]] = []
    todo = [(kind, i) for i in range(num_clips_per_class) for kind in classes]
    print_log(
        f'Generating {len(todo)} clips ({len(classes)} classes x '
        f'{num_clips_per_class}) of {num_frames} frames {side}x{side} in '
        f'{video_root}',
        logger='current')
    bar = ProgressBar(len(todo))
    for kind, i in todo:
        label = CLASSES.index(kind)
        name = f'{kind}_{i}.mp4'
        path = osp.join(video_root, name)
        if not osp.isfile(path):
            write_clip(
                path,
                render_clip(kind, seed * 1000 + label * 100 + i, num_frames,
                            side))
        videos.append((name, label))
        bar.update()
    bar.file.write('\n')
    ann_file = osp.join(root, ANN_FILE)
    with open(ann_file, 'w') as f:
        f.writelines(f'{name} {label}\n' for name, label in videos)
    return dict(ann_file=ann_file, video_root=video_root, videos=videos)
