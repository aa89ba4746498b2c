"""Hooks that make a run report what was evaluated and with what, and stop
a training run whose loss is no longer finite."""
import csv
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmaction.registry import HOOKS
from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..analysis import backbone_report
from ..analysis.flops import adaptive_gflops
from ..models import unwrap
from .provenance import PREFIX

#: Hooks every STA test run carries (``tools/test.py``, the demo).
TEST_HOOKS = ('STAReportHook', 'CheckpointKeysHook', 'ProvenanceHook')


def add_test_hooks(cfg) -> None:
    """Append :data:`TEST_HOOKS` to ``cfg.custom_hooks`` unless present."""
    hooks = list(cfg.get('custom_hooks', []))
    have = {h.get('type') for h in hooks}
    hooks += [dict(type=name) for name in TEST_HOOKS if name not in have]
    cfg.custom_hooks = hooks


@HOOKS.register_module()
class STAReportHook(Hook):
    """Report the evaluated backbone's GFLOPs per view and kept tokens.

    Computed once, with fvcore, on one view of the first test batch's shape
    (so a crop other than the backbone's ``img_size`` is reported as it ran),
    logged then, and added to the test metrics: ``gflops_per_view``,
    ``params_m``, ``view_shape`` and ``tokens`` (before the first prune
    point and after each).

    A backbone with ``rlt_threshold`` keeps as many tokens as each view has
    changing patches: every view's count is taken as the backbone runs it,
    its GFLOPs follow from :func:`~sta_mmaction.analysis.flops.adaptive_fit`,
    ``gflops_per_view`` is their mean, ``gflops_range`` and ``tokens`` (a
    text, also the provenance record's ``token_budget``) say "adaptive" with
    the mean and range, and ``adaptive_tokens.csv`` in the log directory
    holds every view's tokens and GFLOPs.

    Args:
        shape (Sequence[int], optional): (1, C, T, H, W) of one view.
            Defaults to None, the shape of the first test batch.
    """

    priority = 'NORMAL'

    def __init__(self, shape: Optional[Sequence[int]] = None) -> None:
        self.shape = tuple(shape) if shape is not None else None
        self.report: Optional[Dict] = None

    def before_test(self, runner) -> None:
        self.report = None
        self.counts: Optional[List[int]] = None  # adaptive: each view's

    def before_test_iter(self, runner, batch_idx: int,
                         data_batch: Optional[Dict] = None) -> None:
        backbone = unwrap(runner.model).backbone
        if self.report is None and is_main_process():
            shape = self.shape or batch_view_shape(data_batch)
            self.report = backbone_report(backbone, shape)
            self.report['view_shape'] = list(shape)
            name, fit = type(backbone).__name__, self.report['adaptive']
            cost = (f'{self.report["gflops"]:.2f} GFLOPs' if fit is None else
                    f'adaptive, {fit["gflops"][0]:.2f}-{fit["gflops"][1]:.2f} '
                    f'GFLOPs for {fit["tokens"][0]}-{fit["tokens"][1]} '
                    'tokens')
            tokens = ('counted per view' if fit else self.report['tokens']
                      or 'n/a (no pruning)')
            print_log(
                f'{name} on one {tuple(shape)} view: {cost}, '
                f'{self.report["params_m"]:.2f} M params, tokens per prune '
                f'point {tokens}', logger='current')
        if (self.counts is None
                and getattr(backbone, 'rlt_threshold', None) is not None):
            self.counts = []
            self._counter = backbone.register_forward_pre_hook(
                lambda module, args: self.counts.extend(
                    module.clip_token_counts(args[0]).tolist()))

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        counts = None
        if self.counts is not None:
            self._counter.remove()
            counts = [n for part in all_gather_object(self.counts)
                      for n in part]
        if self.report is None:
            return
        if self.report['adaptive'] is not None:
            self._adaptive(runner, counts, metrics)
            return
        extra = dict(
            gflops_per_view=round(self.report['gflops'], 3),
            params_m=round(self.report['params_m'], 3))
        for key, value in extra.items():
            runner.message_hub.update_scalar(f'test/{key}', value)
        for key in ('tokens', 'view_shape'):
            runner.message_hub.update_info(f'test/{key}', self.report[key])
        if metrics is not None:
            metrics.update(extra, tokens=self.report['tokens'],
                           view_shape=self.report['view_shape'])

    def _adaptive(self, runner, counts: List[int],
                  metrics: Optional[Dict]) -> None:
        """Mean and range of the views' tokens and GFLOPs, every view's in
        ``adaptive_tokens.csv``."""
        fit = self.report['adaptive']
        gflops = adaptive_gflops(fit['fit'], counts)
        mean = sum(gflops) / len(gflops)
        text = (f'adaptive (RLT rlt_threshold={fit["rlt_threshold"]}): '
                f'tokens per view mean {sum(counts) / len(counts):.1f}, '
                f'range {min(counts)}-{max(counts)}; GFLOPs per view mean '
                f'{mean:.2f}, range {min(gflops):.2f}-{max(gflops):.2f}; '
                f'over {len(counts)} views')
        path = osp.join(runner.log_dir, 'adaptive_tokens.csv')
        with open(path, 'w', newline='') as f:
            out = csv.writer(f)
            out.writerow(['view', 'tokens', 'gflops'])
            out.writerows((i, n, f'{g:.4f}')
                          for i, (n, g) in enumerate(zip(counts, gflops)))
        print_log(f'{text} (every view: {path})', logger='current')
        hub = runner.message_hub
        hub.update_info(f'{PREFIX}token_budget', text)
        extra = dict(gflops_per_view=round(mean, 3),
                     gflops_range=[round(min(gflops), 3),
                                   round(max(gflops), 3)],
                     params_m=round(self.report['params_m'], 3), tokens=text,
                     view_shape=self.report['view_shape'],
                     adaptive_tokens_file=path)
        for key, value in extra.items():
            hub.update_info(f'test/{key}', value)
        if metrics is not None:
            metrics.update(extra)


def batch_view_shape(data_batch: Optional[Dict]) -> Tuple[int, ...]:
    """(1, C, T, H, W) of one view of a test batch, as the pipeline made it.

    Args:
        data_batch (dict): A test batch; ``inputs`` hold (V, C, T, H, W).
    """
    inputs = (data_batch or {}).get('inputs')
    if inputs is None or len(inputs) == 0 or inputs[0].dim() != 5:
        shape = None if inputs is None or len(inputs) == 0 else tuple(
            inputs[0].shape)
        raise ValueError(
            'STAReportHook needs test batches of (views, C, T, H, W) clips '
            f'(FormatShape NCTHW), got inputs of shape {shape}; pass '
            'shape=(1, C, T, H, W) to the hook for other inputs.')
    return (1, *inputs[0].shape[1:])


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first NaN or infinite loss, naming the iteration.

    mmengine goes on with a NaN loss, saves checkpoints full of NaN and
    validates on NaN scores. This hook runs after each step, before
    ``CheckpointHook`` (``VERY_LOW``) can save the broken weights.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[Dict] = None,
                         outputs: Optional[Dict] = None) -> None:
        values = {k: float(torch.as_tensor(v).detach())
                  for k, v in (outputs or {}).items() if 'loss' in k}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLossError(
                f'training stopped at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}, batch {batch_idx + 1}): {bad}; no '
                'checkpoint of it was saved. Lower the learning rate or '
                'clip gradients (optim_wrapper.clip_grad), or check the data.')
