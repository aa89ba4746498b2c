"""Demo building blocks: recognizers with given or random weights, test runs.

The test run is the standard one: mmengine's ``Runner`` with the config's
``VideoDataset`` (as ``SafeVideoDataset``), decord pipeline, recognizer and
``AccMetric``, plus :class:`~sta_mmaction.engine.STAReportHook` (GFLOPs per
view and tokens) and :class:`~sta_mmaction.engine.CheckpointKeysHook`.
"""
import copy
import logging
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
from mmaction.registry import HOOKS, MODELS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from torch import nn

from ..datasets import wire_test_data
from ..engine import add_test_hooks, unwrap
from ..utils.checkpoint_io import (load_recognizer_weights,
                                   save_mmengine_checkpoint)
from ..visualization.kept_tokens import single_view_pipeline


def build_recognizer(cfg: Config,
                     checkpoint: Optional[str] = None,
                     seed: int = 0) -> nn.Module:
    """The config's recognizer with a checkpoint's or random weights.

    Random weights are MMAction2's own initialisation (``init_weights``)
    under ``seed``; a backbone that would download ImageNet weights for it
    (``pretrained`` set) keeps PyTorch's default initialisation instead. A
    checkpoint is loaded and checked as ``tools/test.py`` does, and may lack
    keys only when the config sets ``allow_partial_load = True``.

    Args:
        cfg (Config): Config with ``model``.
        checkpoint (str, optional): Path or URL. Defaults to None, random.
        seed (int): Seed of the random weights. Defaults to 0.
    """
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    if checkpoint:
        load_recognizer_weights(model, checkpoint,
                                cfg.get('allow_partial_load', False))
    elif not getattr(model.backbone, 'pretrained', None):
        # init_weights logs one INFO record per tensor; keep them out.
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    return model.eval()


def save_random_checkpoint(cfg: Config, path: str, seed: int = 0) -> str:
    """Save the config's recognizer with random weights, mmengine-style."""
    model = build_recognizer(cfg, None, seed)
    save_mmengine_checkpoint(
        model.state_dict(),
        path,
        cfg.pretty_text,
        meta=dict(experiment_name='sta-demo-random-weights'))
    return path


def quick_views(cfg: Config) -> Config:
    """Set the test protocol to 1 clip x 1 center crop per video."""
    cfg.test_dataloader.dataset.pipeline = single_view_pipeline(cfg)
    return cfg


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """An mmengine progress bar over the test iterations.

    For runs whose log level hides the logger's per-iteration lines.
    """

    priority = 'VERY_LOW'

    def before_test_epoch(self, runner) -> None:
        self._bar = ProgressBar(len(runner.test_dataloader))

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        self._bar.update()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._bar.file.write('\n')


def demo_test_cfg(cfg: Config,
                  drop_number: int,
                  ann_file: str,
                  video_root: str,
                  checkpoint: str,
                  work_dir: str,
                  full_protocol: bool = False,
                  verbose: bool = False) -> Config:
    """A copy of ``cfg`` set up for one demo test run.

    Args:
        cfg (Config): An STA test config.
        drop_number (int): ``r`` of its backbone.
        ann_file (str): K400-format annotation file.
        video_root (str): Folder of its videos.
        checkpoint (str): Weights to load.
        work_dir (str): Work dir of the run (logs, metrics JSON).
        full_protocol (bool): Keep the config's views per video instead of
            1 clip x 1 center crop. Defaults to False.
        verbose (bool): Keep mmengine's INFO logs (environment, config,
            per-iteration lines) instead of a progress bar. Defaults to
            False.
    """
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.drop_number = drop_number
    if not full_protocol:
        quick_views(cfg)
    loader = cfg.test_dataloader
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.dataset.ann_file = ann_file
    loader.dataset.data_prefix = dict(video=video_root)
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir
    wire_test_data(cfg)
    cfg.experiment_name = f'r{drop_number}'
    add_test_hooks(cfg)
    if not verbose:
        cfg.log_level = 'WARNING'
        cfg.custom_hooks.append(dict(type='ProgressBarHook'))
    return cfg


def run_test(cfg: Config) -> Tuple[Dict, nn.Module]:
    """Run MMAction2's test loop; returns its metrics and the model.

    The metrics hold ``acc/top1``, ``acc/top5``, ``acc/mean1`` and the
    report of :class:`~sta_mmaction.engine.STAReportHook`
    (``gflops_per_view``, ``params_m``, ``tokens``), as written to the work
    dir's JSON.
    """
    print_log(
        f'Testing {cfg.model.backbone.type} with drop_number='
        f'{cfg.model.backbone.drop_number} on '
        f'{osp.basename(cfg.test_dataloader.dataset.ann_file)} '
        f'(work dir {cfg.work_dir})',
        logger='current')
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if cfg.get('log_level') == 'WARNING':
        # The runner's logger is now mmengine's current one; let the
        # caller's INFO messages through again.
        for handler in runner.logger.handlers:
            if handler.level == logging.WARNING:
                handler.setLevel(logging.INFO)
    return dict(metrics), unwrap(runner.model).eval()
