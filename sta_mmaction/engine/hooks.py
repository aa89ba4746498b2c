"""Hooks that make a test run report what was evaluated and with what."""
from typing import Dict, Optional, Sequence, Tuple

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..analysis import backbone_report
from ..models import unwrap

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

    def before_test_iter(self, runner, batch_idx: int,
                         data_batch: Optional[Dict] = None) -> None:
        if self.report is not None or not is_main_process():
            return
        shape = self.shape or batch_view_shape(data_batch)
        backbone = unwrap(runner.model).backbone
        self.report = backbone_report(backbone, shape)
        self.report['view_shape'] = list(shape)
        print_log(
            f'{type(backbone).__name__} on one {tuple(shape)} view: '
            f'{self.report["gflops"]:.2f} GFLOPs, '
            f'{self.report["params_m"]:.2f} M params, tokens per prune point '
            f'{self.report["tokens"] or "n/a (no pruning)"}', logger='current')

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        if self.report is None:
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
