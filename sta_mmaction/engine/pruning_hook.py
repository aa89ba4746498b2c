"""STAPruningHook: STA-prune a stock MMAction2 ViT or Video Swin at test time.

One line added to a stock MMAction2 test config prunes its model::

    custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)
    custom_hooks = [dict(type='STAPruningHook', drop_number=64)]

Like ToMe's patches, the conversion swaps the backbone's class for its STA
subclass (``VisionTransformer`` -> ``STAViT``, ``SwinTransformer3D`` ->
``STASwin3D``). The STA classes add no parameter or buffer, so the weights,
their device and dtype, and any distributed wrapper around the model stay as
they are; only the forward changes.
"""
from typing import Dict, Mapping, Optional, Sequence, Type

import torch
from mmaction.models.backbones.swin import SwinTransformer3D
from mmaction.models.backbones.vit_mae import VisionTransformer
from mmaction.registry import HOOKS
from mmengine.logging import print_log
from torch import nn

from ..core import validate_drop_number
from ..models import STASwin3D, STAViT
from ..models.strategy import check_strategy_args
from .hooks import STAReportHook, unwrap

#: Stock MMAction2 backbone -> its STA version, which adds no weights.
STA_VERSIONS: Dict[type, type] = {
    VisionTransformer: STAViT,
    SwinTransformer3D: STASwin3D,
}


def sta_version(backbone: nn.Module) -> Type[nn.Module]:
    """The STA class a backbone converts to.

    Args:
        backbone (nn.Module): A stock ``VisionTransformer`` or
            ``SwinTransformer3D``, or already an ``STAViT`` or
            ``STASwin3D``. Subclasses of the stock backbones other than the
            STA ones are refused: swapping their class would drop their own
            code.

    Returns:
        type: ``STAViT`` or ``STASwin3D``.
    """
    kind = type(backbone)
    if kind in STA_VERSIONS:
        return STA_VERSIONS[kind]
    if kind in STA_VERSIONS.values():
        return kind
    allowed = ', '.join(
        sorted(c.__name__ for pair in STA_VERSIONS.items() for c in pair))
    raise ValueError(
        f'STAPruningHook cannot prune a {kind.__module__}.{kind.__name__} '
        f'backbone; it supports exactly these backbone types: {allowed}.')


def convert_backbone(backbone: nn.Module,
                     drop_number: int,
                     backbone_cfg: Mapping,
                     strategy: Optional[str] = None,
                     seed: Optional[int] = None) -> nn.Module:
    """Turn a stock backbone into its STA version, in place.

    The STA class's own ``__init__`` does the checking: an STA backbone (the
    "probe") is built on the CPU from ``backbone_cfg`` with ``drop_number``,
    so any setting STA cannot prune (a clip length the schedule cannot cut,
    ``return_feat_map=True``, ``r`` too large for the grid ...) raises the
    same ``ValueError`` that the matching STA config raises. The probe's
    state-dict keys and shapes must equal the live backbone's, which proves
    that the config describes it. Then the live backbone's class is swapped
    and the attributes STA's ``__init__`` added (``drop_number``,
    ``num_frames``, ``prune_layers``, ...) are copied from the probe, which
    is dropped. The weights are never copied or moved.

    Converting a backbone that already is the STA version with the same
    ``drop_number``, ``strategy`` and ``seed`` does nothing; otherwise it
    re-runs the checks and sets the new ones (the other STA settings of the
    config, e.g. ``prop_attn``, are taken from ``backbone_cfg``).

    Args:
        backbone (nn.Module): The live backbone (unwrapped).
        drop_number (int): ``r`` of the STA class.
        backbone_cfg (Mapping): The config the backbone was built from,
            e.g. ``runner.cfg.model.backbone``. Its ``type`` is ignored.
        strategy (str, optional): The STA class's ``strategy``. Defaults to
            None: ``backbone_cfg``'s, else ``'sta'``.
        seed (int, optional): The STA class's ``seed``. Defaults to None:
            ``backbone_cfg``'s, else None.

    Returns:
        nn.Module: ``backbone`` itself, now of the STA class.
    """
    validate_drop_number(drop_number)
    sta_cls = sta_version(backbone)
    wanted = dict(
        drop_number=drop_number,
        strategy=backbone_cfg.get('strategy', 'sta')
        if strategy is None else strategy,
        seed=backbone_cfg.get('seed') if seed is None else seed)
    if type(backbone) is sta_cls and all(
            getattr(backbone, k) == v for k, v in wanted.items()):
        return backbone
    kwargs = {k: v for k, v in dict(backbone_cfg).items() if k != 'type'}
    kwargs.update(wanted)
    with torch.no_grad():
        probe = sta_cls(**kwargs)
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))[:6]
        raise ValueError(
            f'The backbone config ({backbone_cfg.get("type")}) does not '
            f'describe the live {type(backbone).__name__}: their weights '
            f'differ in name or shape, e.g. {diff}. STAPruningHook reads '
            'model.backbone of the config the model was built from.')
    added = set(vars(probe)) - set(vars(backbone)) | set(sta_cls.STA_SETTINGS)
    backbone.__class__ = sta_cls
    for name in sorted(added):
        setattr(backbone, name, getattr(probe, name))
    return backbone


@HOOKS.register_module()
class STAPruningHook(STAReportHook):
    """Prune the test model's stock backbone with STA, and report it.

    At ``before_test`` (after the checkpoint is loaded) the model's
    ``VisionTransformer`` or ``SwinTransformer3D`` backbone becomes an
    ``STAViT`` or ``STASwin3D`` with the same weights and ``drop_number``
    (see :func:`convert_backbone`); a distributed wrapper is looked through.
    Results then equal those of the matching STA config at the same ``r``.
    Applying the hook twice is harmless; any other backbone raises a
    ``ValueError``.

    Reporting is :class:`STAReportHook`'s: GFLOPs per view, parameters and
    the token count after each prune point, computed once after the
    conversion, logged, and added beside the accuracy in the work dir's JSON.
    At the end of the test the hook logs them again with the accuracy. A
    plain ``STAReportHook`` in the same run (``tools/test.py`` adds one)
    is left to do the report, so nothing is counted twice; among several
    pruning hooks the last one reports. The hook's priority,
    ``ABOVE_NORMAL``, makes it convert before any ``NORMAL`` report hook.

    Args:
        drop_number (int): ``r``, as in ``STAViT`` / ``STASwin3D``. ``0``
            converts but prunes nothing.
        strategy (str, optional): ``'sta'`` or a baseline, as in ``STAViT``
            / ``STASwin3D`` (which refuses ``'tome'``). Defaults to None: the
            config's backbone setting, else ``'sta'``.
        seed (int, optional): Seed of the ``'random'`` strategy. Defaults to
            None: the config's backbone setting, else torch's global RNG.
        shape (Sequence[int], optional): (1, C, T, H, W) of one view for the
            report. Defaults to None, read from the config.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 drop_number: int,
                 strategy: Optional[str] = None,
                 seed: Optional[int] = None,
                 shape: Optional[Sequence[int]] = None) -> None:
        validate_drop_number(drop_number)
        check_strategy_args(strategy or 'sta', seed)
        super().__init__(shape=shape)
        self.drop_number = drop_number
        self.strategy = strategy
        self.seed = seed
        self._reporter: Optional[STAReportHook] = None
        self._metrics: Optional[Dict] = None

    def before_test(self, runner) -> None:
        model = unwrap(runner.model)
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise ValueError(
                f'STAPruningHook needs a recognizer with a backbone, got a '
                f'{type(model).__name__} without one.')
        backbone_cfg = _backbone_cfg(runner)
        old = type(backbone).__name__
        old_r = getattr(backbone, 'drop_number', None)
        convert_backbone(backbone, self.drop_number, backbone_cfg,
                         self.strategy, self.seed)
        if old_r is not None and old_r != self.drop_number:
            print_log(
                f'STAPruningHook: the backbone was already an {old} with '
                f'drop_number={old_r}; it now uses drop_number='
                f'{self.drop_number}.',
                logger='current',
                level=30)
        elif old_r is None:
            print_log(
                f'STAPruningHook: {old} -> {type(backbone).__name__} with '
                f'drop_number={self.drop_number}, strategy='
                f'{backbone.strategy!r}, same weights.',
                logger='current')
        self._reporter = self._pick_reporter(runner)
        if self._reporter is self:
            super().before_test(runner)

    def _pick_reporter(self, runner) -> STAReportHook:
        """The one report hook of the run that computes the report."""
        hooks = list(runner.hooks)
        plain = [
            h for h in hooks if isinstance(h, STAReportHook)
            and not isinstance(h, STAPruningHook)
        ]
        if plain:
            if hooks.index(plain[0]) < hooks.index(self):
                raise ValueError(
                    f'{type(plain[0]).__name__} (priority '
                    f'{plain[0].priority}) runs before STAPruningHook '
                    f'(priority {self.priority}), so it would report the '
                    'unpruned backbone. Let it run after STAPruningHook: '
                    "give it priority='NORMAL' (its default) or lower.")
            return plain[0]
        return [h for h in hooks if isinstance(h, STAPruningHook)][-1]

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        if self._reporter is self:
            super().after_test_epoch(runner, metrics)
        # The same dict gets the plain report hook's keys after this call.
        self._metrics = metrics

    def after_test(self, runner) -> None:
        pruners = [h for h in runner.hooks if isinstance(h, STAPruningHook)]
        if self._reporter is not None and pruners[-1] is self:
            self.log_summary(self._reporter.report, self._metrics)

    def log_summary(self, report: Optional[Dict],
                    metrics: Optional[Dict]) -> None:
        """Log GFLOPs per view and tokens per prune point (and accuracy)."""
        if report is None:  # not the main process
            return
        acc = ''
        if metrics:
            acc = ', ' + ', '.join(f'{k}={v:.4f}' for k, v in metrics.items()
                                   if k.startswith('acc/'))
        print_log(
            f'STAPruningHook (drop_number={self.drop_number}): '
            f'{report["gflops"]:.2f} GFLOPs per view, tokens before the '
            f'first prune point and after each {report["tokens"]}{acc}',
            logger='current')


def _backbone_cfg(runner) -> Mapping:
    model_cfg = runner.cfg.get('model')
    backbone_cfg = model_cfg.get('backbone') if isinstance(model_cfg,
                                                           Mapping) else None
    if not isinstance(backbone_cfg, Mapping):
        raise ValueError(
            'STAPruningHook reads the backbone settings from the config\'s '
            'model.backbone, but this runner\'s config has none (was the '
            'model passed to the Runner as a module?). Build the runner '
            'from a config, e.g. Runner.from_cfg(cfg).')
    return backbone_cfg
