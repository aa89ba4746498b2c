"""Kept-token pictures of a config's model on one video.

What ``tools/visualize_tokens.py`` runs: the config's recognizer (a
checkpoint's or random weights), its backbone pruned as the config's test
run would prune it, drawn by :func:`sta_mmaction.visualization.
visualize_video`.
"""
import logging
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmaction.utils import register_all_modules
from torch import nn

from ..models import convert_backbone
from ..visualization import visualize_video
from .protocol import build_recognizer


def pruning_hook(cfg: Config) -> Dict:
    """The config's STAPruningHook settings, else an empty dict."""
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'STAPruningHook':
            return hook
    return {}


def build_pruned_model(cfg: Config,
                       checkpoint: Optional[str] = None,
                       drop_number: Optional[int] = None,
                       seed: int = 0) -> nn.Module:
    """The config's recognizer, weights loaded, its backbone STA-pruned.

    Args:
        cfg (Config): A test config.
        checkpoint (str, optional): Weights. Defaults to None, random.
        drop_number (int, optional): r. Defaults to None: the config's
            ``STAPruningHook``'s, else the backbone's own. ``strategy``,
            ``seed`` and the other STA settings come from the hook, else
            the backbone.
        seed (int): Seed of random weights. Defaults to 0.
    """
    model = build_recognizer(cfg, checkpoint, seed)
    settings = {k: v for k, v in pruning_hook(cfg).items() if k != 'type'}
    hook_r = settings.pop('drop_number', None)
    strategy = settings.pop('strategy', None)
    hook_seed = settings.pop('seed', None)
    r = drop_number if drop_number is not None else hook_r
    if r is None:
        r = getattr(model.backbone, 'drop_number', 0)
    convert_backbone(model.backbone, r, strategy, hook_seed, **settings)
    return model.eval()


def visualize_config(video: str,
                     config: str,
                     checkpoint: Optional[str] = None,
                     drop_number: Optional[int] = None,
                     out: Optional[str] = None,
                     gif: bool = False,
                     all_frames: bool = False,
                     seed: int = 0,
                     cfg_options: Optional[Dict] = None) -> Dict:
    """Draw the tokens that ``config``'s model keeps in ``video``.

    Args:
        video (str): Video file.
        config (str): Test config (STA backbone, or stock with
            ``STAPruningHook``).
        checkpoint (str, optional): Weights. Defaults to None, random.
        drop_number (int, optional): r to draw. Defaults to None, the
            config's.
        out (str, optional): PNG path. Defaults to None,
            ``work_dirs/vis/<video>_<config>.png``.
        gif (bool): Also write an animated GIF. Defaults to False.
        all_frames (bool): One column per sampled frame instead of per
            temporal slice. Defaults to False.
        seed (int): Seed of random weights. Defaults to 0.
        cfg_options (dict, optional): Config overrides. Defaults to None.

    Returns:
        dict: :func:`~sta_mmaction.visualization.visualize_video`'s result.
    """
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_pruned_model(cfg, checkpoint, drop_number, seed)
    weights = (f'weights {osp.basename(checkpoint)}'
               if checkpoint else 'RANDOM WEIGHTS (no checkpoint given)')
    if not checkpoint:
        print_log(
            'No checkpoint given: the model has random weights, so the '
            'picture shows what STA keeps for an untrained network.',
            logger='current',
            level=logging.WARNING)
    stem = (f'{osp.splitext(osp.basename(video))[0]}_'
            f'{osp.splitext(osp.basename(config))[0]}')
    out = out or osp.join('work_dirs', 'vis', f'{stem}.png')
    return visualize_video(
        model,
        cfg,
        video,
        out,
        osp.splitext(out)[0] + '.gif' if gif else None,
        title=f'{osp.basename(config)}, {weights}',
        all_frames=all_frames)
