"""STAPruningHook: STA-prune a stock MMAction2 ViT or Video Swin at test time.

One line added to a stock MMAction2 test config prunes its model::

    custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)
    custom_hooks = [dict(type='STAPruningHook', drop_number=64)]

The hook converts the live backbone in place
(:func:`sta_mmaction.convert_backbone`); it reads no config.
"""
import logging
from typing import Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..core import validate_drop_number
from ..models import STA_VERSIONS, convert_backbone, unwrap
from ..models.strategy import check_known, check_strategy_args
from .hooks import STAReportHook

#: STA settings of any backbone beyond ``drop_number``, ``strategy``, ``seed``.
EXTRA_SETTINGS = tuple(sorted({
    k for cls in STA_VERSIONS.values() for k in cls.STA_SETTINGS
    if k not in ('drop_number', 'strategy', 'seed')}))


@HOOKS.register_module()
class STAPruningHook(Hook):
    """Prune the test model's stock backbone with STA, in place.

    At ``before_test`` (after the checkpoint is loaded) a
    ``VisionTransformer`` or ``SwinTransformer3D`` backbone becomes an
    ``STAViT`` or ``STASwin3D`` with the same weights and these settings;
    results then equal the matching STA config's. Applying it twice is
    harmless; any other backbone, or an ``STAReportHook`` that would run
    first (and report the unpruned model), is a ``ValueError``.

    Args:
        drop_number (int): ``r``; ``0`` converts but prunes nothing.
            Required (None only so that a misspelt key is named).
        strategy (str, optional): ``'sta'`` or a baseline. Defaults to None:
            the backbone's own if it already is an STA one, else ``'sta'``.
        seed (int, optional): Seed of the ``'random'`` strategy. Defaults to
            None: the backbone's own, else torch's global RNG.
        **settings: Other STA settings, e.g. ``fused_attention``; unknown
            ones are a ``ValueError`` naming the closest known one.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, drop_number: Optional[int] = None,
                 strategy: Optional[str] = None, seed: Optional[int] = None,
                 **settings) -> None:
        check_known('STAPruningHook', settings,
                    ('drop_number', 'strategy', 'seed') + EXTRA_SETTINGS)
        if drop_number is None:
            raise ValueError(
                'STAPruningHook needs drop_number, the r to prune with '
                "(e.g. dict(type='STAPruningHook', drop_number=64)).")
        validate_drop_number(drop_number)
        check_strategy_args(strategy or 'sta', seed)
        self.drop_number = drop_number
        self.strategy = strategy
        self.seed = seed
        self.settings = settings

    def before_test(self, runner) -> None:
        model = unwrap(runner.model)
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise ValueError(
                f'STAPruningHook needs a recognizer with a backbone, got a '
                f'{type(model).__name__} without one.')
        self._check_order(runner)
        old = type(backbone).__name__
        old_r = getattr(backbone, 'drop_number', None)
        convert_backbone(backbone, self.drop_number, self.strategy,
                         self.seed, **self.settings)
        if old_r is not None and old_r != self.drop_number:
            print_log(
                f'STAPruningHook: the backbone was already an {old} with '
                f'drop_number={old_r}; it now uses drop_number='
                f'{self.drop_number}.', logger='current',
                level=logging.WARNING)
        elif old_r is None:
            print_log(
                f'STAPruningHook: {old} -> {type(backbone).__name__} with '
                f'drop_number={self.drop_number}, strategy='
                f'{backbone.strategy!r}, same weights.', logger='current')

    def _check_order(self, runner) -> None:
        """A report hook that runs before this one would see stock."""
        hooks = list(runner.hooks)
        mine = hooks.index(self) if self in hooks else len(hooks)
        for hook in hooks[:mine]:
            if isinstance(hook, STAReportHook):
                raise ValueError(
                    f'{type(hook).__name__} (priority {hook.priority}) runs '
                    f'before STAPruningHook (priority {self.priority}), so '
                    'it would report the unpruned backbone. Let it run after '
                    "STAPruningHook: give it priority='NORMAL' (its "
                    'default) or lower.')
