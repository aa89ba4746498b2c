"""A config's backbone at several drop numbers, pruned as its test run is.

A config prunes in one of two ways: its backbone is an STA one
(``STAViT``, ``STASwin3D``), or it is a stock one and ``custom_hooks`` holds
an ``STAPruningHook``. Either way the backbone is built once and converted
in place at each ``r`` (:func:`sta_mmaction.convert_backbone`), with the
hook's strategy, seed and settings where there is a hook, so every ``r``
measures the model a test run at that ``r`` evaluates. A config that does
neither can only be measured as it is, at ``r = 0``.
"""
import copy
from typing import Dict, List, Optional, Sequence

from mmaction.registry import MODELS
from mmengine.config import Config
from torch import nn

from ..models import STA_VERSIONS, convert_backbone
from .flops import backbone_report

#: Keys of an ``STAPruningHook`` entry that are not conversion settings.
_HOOK_KEYS = ('type', 'priority', 'drop_number')


def pruning_hook_cfg(cfg: Config) -> Optional[Dict]:
    """The config's ``STAPruningHook`` entry, else None.

    With several, the last one, whose conversion runs last and so holds.
    """
    hooks = [
        h for h in cfg.get('custom_hooks', None) or []
        if h.get('type') == 'STAPruningHook'
    ]
    return dict(hooks[-1]) if hooks else None


def _backbone_class(cfg: Config) -> type:
    kind = cfg.model.backbone.get('type')
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        raise ValueError(f'model.backbone.type={kind!r} is not a registered '
                         'model; import the package that registers it '
                         "(custom_imports=dict(imports=['sta_mmaction'])).")
    return cls


def config_drop_number(cfg: Config) -> int:
    """The ``r`` a test run of the config uses: the hook's, else the
    backbone's ``drop_number``, else 0."""
    hook = pruning_hook_cfg(cfg)
    if hook is not None:
        return hook.get('drop_number', 0)
    return cfg.model.backbone.get('drop_number', 0)


def drop_numbers_of(cfg: Config,
                    drop_numbers: Optional[Sequence[Optional[int]]] = None
                    ) -> List[int]:
    """The drop numbers to measure, checked against what the config prunes.

    Args:
        cfg (Config): The config.
        drop_numbers (Sequence[int], optional): Requested ``r``; a None entry
            is the config's own (:func:`config_drop_number`). Defaults to
            None, the config's own alone.

    Returns:
        list[int]: The drop numbers.
    """
    rs = [
        config_drop_number(cfg) if r is None else r
        for r in (drop_numbers or [None])
    ]
    cls = _backbone_class(cfg)
    sta = cls in STA_VERSIONS.values()
    if not sta and pruning_hook_cfg(cfg) is None and any(rs):
        raise ValueError(
            f'drop numbers {rs}: the config\'s backbone is a {cls.__name__} '
            'and its custom_hooks hold no STAPruningHook, so nothing prunes '
            'it; it can only be measured as it is, at r=0. Use an STA '
            'backbone (STAViT, STASwin3D) or add '
            "dict(type='STAPruningHook', drop_number=...) to custom_hooks.")
    return rs


def build_backbone(cfg: Config) -> nn.Module:
    """``model.backbone`` of the config, built (random weights)."""
    return MODELS.build(copy.deepcopy(cfg.model.backbone))


def prune_to(backbone: nn.Module, cfg: Config, drop_number: int) -> nn.Module:
    """Convert ``backbone`` (built from ``cfg``) in place to ``r``.

    With the config's ``STAPruningHook`` settings where it has one; an STA
    backbone keeps its own strategy and seed otherwise. A backbone that
    nothing prunes is left as it is (``drop_number`` must be 0, see
    :func:`drop_numbers_of`).

    Returns:
        nn.Module: ``backbone``.
    """
    hook = pruning_hook_cfg(cfg)
    if hook is None and type(backbone) not in STA_VERSIONS.values():
        if drop_number:
            raise ValueError(
                f'drop_number={drop_number}: nothing prunes a '
                f'{type(backbone).__name__} without an STAPruningHook.')
        return backbone
    settings = {
        k: v
        for k, v in (hook or {}).items() if k not in _HOOK_KEYS
    }
    return convert_backbone(backbone, drop_number, **settings)


def stock_copy(backbone: nn.Module) -> nn.Module:
    """A copy of ``backbone`` with the stock MMAction2 class, same weights.

    The reverse of the conversion: an ``STAViT`` copy becomes a
    ``VisionTransformer``, whose own forward then runs.
    """
    stock = {sta: base for base, sta in STA_VERSIONS.items()}
    kind = type(backbone)
    if kind not in stock and kind not in STA_VERSIONS:
        names = sorted(c.__name__ for c in stock)
        raise ValueError(f'{kind.__name__} has no stock MMAction2 version; '
                         f'the STA backbones are {names}.')
    twin = copy.deepcopy(backbone)
    twin.__class__ = stock.get(kind, kind)
    return twin


def flops_sweep(cfg: Config,
                drop_numbers: Optional[Sequence[Optional[int]]],
                shape: Sequence[int]) -> List[Dict]:
    """One :func:`backbone_report` per drop number, with change vs the first.

    Args:
        cfg (Config): The config.
        drop_numbers (Sequence[int], optional): See
            :func:`drop_numbers_of`.
        shape (Sequence[int]): (1, C, T, H, W) of the view.

    Returns:
        list[dict]: rows with ``drop_number``, ``backbone`` (its class),
        ``gflops``, ``change`` (relative to the first row), ``tokens`` (for
        ``shape``) and ``params_m``.
    """
    rs = drop_numbers_of(cfg, drop_numbers)
    backbone = build_backbone(cfg)
    rows = []
    for r in rs:
        prune_to(backbone, cfg, r)
        rep = backbone_report(backbone, tuple(shape))
        rows.append(
            dict(
                drop_number=r,
                backbone=type(backbone).__name__,
                gflops=rep['gflops'],
                tokens=rep['tokens'],
                params_m=rep['params_m']))
    base = rows[0]['gflops']
    for row in rows:
        row['change'] = row['gflops'] / base - 1
    return rows
