"""What ``tools/train.py`` runs: MMAction2's train set-up on mmengine's Runner.

Beside MMAction2's own: a ``load_from`` checkpoint must fill the whole model
(``CheckpointKeysHook``); the train and val lists are checked as
``tools/test.py`` checks its list, an unreadable video stops the run naming
it (``wire_train_data``); a NaN or infinite loss stops it naming the
iteration, before a checkpoint of it is saved (``FiniteLossHook``); and
``launcher='pytorch'`` also runs on CPU (gloo).
Training with STA is a backbone setting (``model.backbone.drop_number=24``):
gradients flow through the kept tokens, not through the selection.
"""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ..datasets import wire_train_data
from .cli import check_output_dir
from .testing import runner_of


def configure_train(cfg: Config, config_path: str, launcher: str = 'none',
                    work_dir: Optional[str] = None, amp: bool = False,
                    resume: Optional[str] = None, no_validate: bool = False,
                    auto_scale_lr: bool = False,
                    verbose: bool = False) -> Config:
    """Apply the train tool's options to ``cfg``, as MMAction2's tool does.

    Args:
        cfg (Config): The train config.
        config_path (str): Its file, for the default work dir.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
            Defaults to ``'none'``.
        work_dir (str, optional): Defaults to None: the config's, else
            ``work_dirs/<config name>``.
        amp (bool): ``AmpOptimWrapper`` (CUDA only). Defaults to False.
        resume (str, optional): ``'auto'`` (the work dir's latest
            checkpoint) or a checkpoint file. Defaults to None.
        no_validate (bool): Drop the validation loop. Defaults to False.
        auto_scale_lr (bool): Scale the learning rate by the actual over
            ``auto_scale_lr.base_batch_size``. Defaults to False.
        verbose (bool): mmengine's dumps on the console too. Defaults to
            False.

    Returns:
        Config: ``cfg``, changed in place.
    """
    missing = [k for k in ('train_dataloader', 'train_cfg', 'optim_wrapper')
               if not cfg.get(k)]
    if missing:
        raise ValueError(
            f'{config_path} has no {", ".join(missing)}: a test-only config '
            'cannot train; use tools/test.py, or a config with a train loop.')
    cfg.launcher = launcher
    if verbose:
        cfg.verbose = True
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('work_dirs', name)
    check_output_dir(cfg.work_dir, '--work-dir')
    if amp:
        if not torch.cuda.is_available():
            raise ValueError('--amp trains with mmengine\'s AmpOptimWrapper, '
                             'which needs CUDA; this machine has none.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    if no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if auto_scale_lr:
        scale = cfg.get('auto_scale_lr') or {}
        if 'base_batch_size' not in scale:
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) '
                'in the config (the batch size its learning rate is for).')
        cfg.auto_scale_lr.enable = True
    wire_train_data(cfg)
    if not any(h.get('type') == 'FiniteLossHook'
               for h in cfg.get('custom_hooks', [])):
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='FiniteLossHook')]
    if cfg.get('load_from') and not any(
            h.get('type') == 'CheckpointKeysHook'
            for h in cfg.get('custom_hooks', [])):
        # mmengine loads load_from with strict=False, which only logs a
        # misfit; the hook refuses one before the first step
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='CheckpointKeysHook')]
    return cfg


def run_train(cfg: Config) -> Runner:
    """``Runner.train`` of a configured ``cfg``; returns the runner."""
    with runner_of(cfg) as runner:
        runner.train()
    return runner
