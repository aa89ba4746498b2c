"""Kept-token pictures (the paper's Figure 3) and GIFs.

One view of a video (the config's test pipeline, one clip, one center crop)
goes through the STA backbone's ``forward_pruned``; ``kept_grids`` maps the
surviving tokens of each prune point to cells of the view's token grid. The
picture has the frames in columns and, in rows, the input and then each
prune point with the pruned cells blanked.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from torch import nn

from ..datasets.safe_decode import CorruptVideoError, reader_error
from ..datasets.sampling import single_view_pipeline

#: Pipeline steps that stay after the frames are taken for drawing.
_PACKING = ('FormatShape', 'PackActionInputs')
#: Colour of pruned cells (RGB, uint8): near-white, as in the paper.
BLANK = (245, 245, 245)


def load_view(cfg: Config, video: str) -> Tuple[np.ndarray, Dict]:
    """Decode and prepare one view of ``video`` with the config's pipeline.

    Args:
        cfg (Config): Test config.
        video (str): Video file.

    Returns:
        tuple: the view's (T, H, W, 3) uint8 RGB frames as the model sees
        them before normalisation, and the packed sample.
    """
    if not osp.isfile(video):
        raise FileNotFoundError(f'video {video!r} does not exist.')
    steps = single_view_pipeline(cfg)
    cut = next((i for i, s in enumerate(steps) if s['type'] in _PACKING),
               len(steps))
    results = dict(filename=video, label=-1, start_index=0, modality='RGB')
    for transform in Compose(steps[:cut]).transforms:
        try:
            results = transform(results)
        except Exception as err:
            error = reader_error(transform, err)
            if error is None:
                raise
            raise CorruptVideoError(
                f'Cannot read video {video}: {error}.') from err
    frames = np.stack(results['imgs']).astype(np.uint8)  # (T, H, W, 3)
    packed = Compose(steps[cut:])(results)
    return frames, packed


def backbone_input(model: nn.Module, packed: Dict) -> torch.Tensor:
    """(1, C, T, H, W) normalised view from a packed sample."""
    data = model.data_preprocessor(pseudo_collate([packed]), False)
    inputs = data['inputs']  # (1, views, C, T, H, W)
    return inputs.view((-1, ) + tuple(inputs.shape[2:]))[:1]


def point_names(backbone: nn.Module) -> List[str]:
    """Human names of the prune points of an STA backbone."""
    if getattr(backbone, 'rlt_threshold', None) is not None:
        return [f'before block 1 (RLT, {backbone.rlt_threshold})']
    if hasattr(backbone, 'prune_layers'):  # STAViT
        depth = len(backbone.blocks)
        return [f'after block {i + 1}/{depth}' for i in backbone.prune_layers]
    return [f'stage {s} input' for s in (2, 3, 4)]  # STASwin3D


def kept_masks(backbone: nn.Module, x: torch.Tensor
               ) -> Tuple[List[np.ndarray], int, List[Dict], torch.Tensor]:
    """Run ``forward_pruned`` and turn kept positions into cell masks.

    Args:
        backbone (nn.Module): ``STAViT`` or ``STASwin3D``.
        x (Tensor): (1, C, T, H, W) view.

    Returns:
        tuple: per prune point a (D, h, w) bool mask of kept cells, the
        frames per slice, per point ``kept`` and ``total`` token counts, and
        the pooled features.
    """
    if not hasattr(backbone, 'forward_pruned'):
        raise ValueError(
            f'{type(backbone).__name__} has no forward_pruned; kept tokens '
            'can be drawn for STAViT or STASwin3D backbones (set '
            'model.backbone.type, or add STAPruningHook to the config).')
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        feats, kept = backbone.forward_pruned(x)
    backbone.train(was_training)
    stride = (backbone.tubelet_size if hasattr(backbone, 'tubelet_size') else
              backbone.patch_embed.patch_size[0])  # frames per slice
    masks = [cells[0].cpu().numpy() for cells in backbone.kept_grids(
        kept, x.shape)]
    counts = [dict(kept=int(m.sum()), total=m.size) for m in masks]
    return masks, stride, counts, feats


def blank_pruned(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) frame with the cells that ``mask`` (h, w) drops blanked."""
    h, w = frame.shape[:2]
    gh, gw = mask.shape
    # cell index of each pixel; Swin grids may overhang (ceil division)
    rows = np.minimum(np.arange(h) * gh // h, gh - 1)
    cols = np.minimum(np.arange(w) * gw // w, gw - 1)
    keep = mask[rows][:, cols]  # (H, W)
    out = frame.copy()
    out[~keep] = BLANK
    return out


def frame_columns(num_frames: int, stride: int,
                  all_frames: bool = False) -> List[int]:
    """Frames to draw: the first of each temporal slice, or all."""
    return list(range(num_frames)) if all_frames else list(
        range(0, num_frames, stride))


def draw_kept_tokens(frames: np.ndarray, masks: Sequence[np.ndarray],
                     stride: int, out_file: str, row_names: Sequence[str],
                     title: str = '', all_frames: bool = False) -> str:
    """Draw frames in columns, input + prune points in rows; returns the PNG.

    Args:
        frames (np.ndarray): (T, H, W, 3) uint8 view.
        masks (Sequence[np.ndarray]): Per point, (D, h, w) kept cells.
        stride (int): Frames per temporal slice.
        out_file (str): PNG path.
        row_names (Sequence[str]): Label of each prune point's row.
        title (str): Figure title. Defaults to ''.
        all_frames (bool): One column per frame instead of one per temporal
            slice. Defaults to False.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = frame_columns(len(frames), stride, all_frames)
    rows = 1 + len(masks)
    h, w = frames.shape[1:3]
    cell = 1.1
    fig, axes = plt.subplots(
        rows, len(cols), squeeze=False,
        figsize=(cell * len(cols) * w / h + 1.2, cell * rows + 0.8))
    for c, f in enumerate(cols):
        axes[0, c].imshow(frames[f])
        axes[0, c].set_title(f'frame {f}', fontsize=7)
        for r, mask in enumerate(masks, start=1):
            axes[r, c].imshow(blank_pruned(frames[f], mask[f // stride]))
    for r, name in enumerate(['input'] + list(row_names)):
        axes[r, 0].set_ylabel(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def animate_kept_tokens(frames: np.ndarray, masks: Sequence[np.ndarray],
                        stride: int, out_file: str, row_names: Sequence[str],
                        title: str = '', fps: int = 4) -> str:
    """Write a GIF of the view, the input beside each prune point; returns it.

    Args:
        frames (np.ndarray): (T, H, W, 3) uint8 view.
        masks (Sequence[np.ndarray]): Per point, (D, h, w) kept cells.
        stride (int): Frames per temporal slice.
        out_file (str): GIF path.
        row_names (Sequence[str]): Label of each prune point's panel.
        title (str): Title. Defaults to ''.
        fps (int): Frames per second. Defaults to 4.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    panels = 1 + len(masks)
    fig, axes = plt.subplots(1, panels, figsize=(2.2 * panels, 3.0))
    images = []
    for ax, name in zip(axes, ['input'] + list(row_names)):
        images.append(ax.imshow(frames[0]))
        ax.set_title(name, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    caption = fig.suptitle(title, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.78))

    def update(f):
        images[0].set_data(frames[f])
        for img, mask in zip(images[1:], masks):
            img.set_data(blank_pruned(frames[f], mask[f // stride]))
        caption.set_text(f'{title}\nframe {f}' if title else f'frame {f}')
        return images

    anim = FuncAnimation(fig, update, frames=len(frames), blit=False)
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    anim.save(out_file, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return out_file


def visualize_video(model: nn.Module, cfg: Config, video: str,
                    out_file: str, gif_file: Optional[str] = None,
                    title: str = '', all_frames: bool = False) -> Dict:
    """Kept-token picture (and GIF) of one video for a built recognizer.

    Args:
        model (nn.Module): Recognizer with an ``STAViT`` or ``STASwin3D``
            backbone, weights loaded.
        cfg (Config): Its test config (for the pipeline).
        video (str): Video file.
        out_file (str): PNG path.
        gif_file (str, optional): GIF path. Defaults to None, no GIF.
        title (str): First line of the title. Defaults to ''.
        all_frames (bool): See :func:`draw_kept_tokens`. Defaults to False.

    Returns:
        dict: ``png``, ``gif`` (or None), ``counts`` (kept / total tokens
        per point), ``shape`` of the view and ``top5`` predicted labels.
    """
    frames, packed = load_view(cfg, video)
    model.eval()
    x = backbone_input(model, packed)  # (1, C, T, H, W)
    backbone = model.backbone
    masks, stride, counts, feats = kept_masks(backbone, x)
    with torch.no_grad():
        scores = model.cls_head(feats).softmax(-1)[0]  # (classes, )
    top5 = scores.topk(min(5, scores.numel())).indices.tolist()
    names = [f'{n}\n{c["kept"]}/{c["total"]} kept'
             for n, c in zip(point_names(backbone), counts)]
    r = getattr(backbone, 'drop_number', None)
    budget = (f'rlt_threshold={backbone.rlt_threshold}'
              if getattr(backbone, 'rlt_threshold', None) is not None else
              f'r={r}')
    full_title = (f'{title}\n{osp.basename(video)}, view '
                  f'{tuple(x.shape[1:])}, {type(backbone).__name__} '
                  f'{getattr(backbone, "strategy", "")} {budget}, '
                  f'top-5 labels {top5}').strip()
    draw_kept_tokens(frames, masks, stride, out_file, names, full_title,
                     all_frames)
    if gif_file:
        animate_kept_tokens(frames, masks, stride, gif_file,
                            [n.replace('\n', ', ') for n in names], full_title)
    print_log(
        f'Kept-token picture of {video} ({type(backbone).__name__}, '
        f'{getattr(backbone, "strategy", "")} {budget}, '
        f'view {tuple(x.shape[1:])}): {out_file}' +
        (f' and {gif_file}' if gif_file else '') + '; kept per point: ' +
        ', '.join(f'{c["kept"]}/{c["total"]}' for c in counts),
        logger='current')
    return dict(png=out_file, gif=gif_file, backbone=type(backbone).__name__,
                drop_number=r, strategy=getattr(backbone, 'strategy', None),
                counts=counts, shape=tuple(x.shape), top5=top5)
