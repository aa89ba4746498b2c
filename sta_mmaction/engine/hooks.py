"""Hooks that make a test run report what was evaluated and with what."""
from typing import Dict, Optional, Sequence

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..analysis import backbone_report, view_shape


#: Hooks every STA test run carries (``tools/test.py``, the demo).
TEST_HOOKS = ('STAReportHook', 'CheckpointKeysHook')


def add_test_hooks(cfg) -> None:
    """Append :data:`TEST_HOOKS` to ``cfg.custom_hooks`` unless present."""
    hooks = list(cfg.get('custom_hooks', []))
    have = {h.get('type') for h in hooks}
    hooks += [dict(type=name) for name in TEST_HOOKS if name not in have]
    cfg.custom_hooks = hooks


def unwrap(model):
    """The model inside a distributed (or other) wrapper."""
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class STAReportHook(Hook):
    """Report the evaluated backbone's GFLOPs per view and kept tokens.

    The report is computed once, after the checkpoint is loaded, with fvcore
    on one view whose shape comes from the test pipeline. It is logged at the
    start of the test and added to the test metrics, so it lands beside the
    accuracy in the work dir's JSON log: ``gflops_per_view``, ``params_m`` and
    ``tokens`` (the token count before the first prune point and after each).

    Args:
        shape (Sequence[int], optional): (1, C, T, H, W) of one view.
            Defaults to None, read from the config.
    """

    priority = 'NORMAL'

    def __init__(self, shape: Optional[Sequence[int]] = None) -> None:
        self.shape = tuple(shape) if shape is not None else None
        self.report: Optional[Dict] = None

    def before_test(self, runner) -> None:
        if not is_main_process():
            return
        backbone = unwrap(runner.model).backbone
        shape = self.shape or view_shape(runner.cfg)
        self.report = backbone_report(backbone, shape)
        print_log(
            f'{type(backbone).__name__} on one {tuple(shape)} view: '
            f'{self.report["gflops"]:.2f} GFLOPs, '
            f'{self.report["params_m"]:.2f} M params, tokens per prune point '
            f'{self.report["tokens"] or "n/a (no pruning)"}',
            logger='current')

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        if self.report is None:
            return
        extra = dict(
            gflops_per_view=round(self.report['gflops'], 3),
            params_m=round(self.report['params_m'], 3))
        for key, value in extra.items():
            runner.message_hub.update_scalar(f'test/{key}', value)
        runner.message_hub.update_info('test/tokens', self.report['tokens'])
        if metrics is not None:
            metrics.update(extra, tokens=self.report['tokens'])
