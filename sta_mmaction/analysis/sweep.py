"""A config's backbone at several drop numbers, pruned as its test run is.

The backbone is built once and given each ``r`` with the settings of the
config's test run (:func:`sta_mmaction.models.pruning_of`), so every ``r``
measures what a test run at that ``r`` evaluates.
"""
import copy
from typing import Dict, List, Optional, Sequence

from mmaction.registry import MODELS
from mmengine.config import Config
from torch import nn

from ..models import STA_VERSIONS, apply_pruning, pruning_of
from .flops import backbone_report


def drop_numbers_of(cfg: Config,
                    drop_numbers: Optional[Sequence[Optional[int]]] = None
                    ) -> List[int]:
    """The drop numbers to measure, checked against what the config prunes.

    Args:
        cfg (Config): The config.
        drop_numbers (Sequence[int], optional): Requested ``r``; a None entry
            is the config's own. Defaults to None, the config's own alone.
    """
    pruning = pruning_of(cfg)
    own = pruning.drop_number or 0
    rs = [own if r is None else r for r in (drop_numbers or [None])]
    if pruning.drop_number is None and any(rs):
        raise ValueError(
            f'drop numbers {rs}: the config\'s backbone is a '
            f'{pruning.backbone.__name__} and its custom_hooks hold no '
            'STAPruningHook, so nothing prunes it; it can only be measured '
            'as it is, at r=0. Use an STA backbone (STAViT, STASwin3D) or '
            "add dict(type='STAPruningHook', drop_number=...) to "
            'custom_hooks.')
    return rs


def build_backbone(cfg: Config) -> nn.Module:
    """``model.backbone`` of the config, built (random weights)."""
    return MODELS.build(copy.deepcopy(cfg.model.backbone))


def stock_copy(backbone: nn.Module) -> nn.Module:
    """A copy of ``backbone`` with the stock MMAction2 class, same weights."""
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
                shape: Sequence[int],
                strategies: Optional[Sequence[str]] = None) -> List[Dict]:
    """One :func:`backbone_report` per strategy and drop number, with the
    change vs the first row and vs the oracle at the same r.

    Args:
        cfg (Config): The config.
        drop_numbers (Sequence[int], optional): See :func:`drop_numbers_of`.
        shape (Sequence[int]): (1, C, T, H, W) of the view.
        strategies (Sequence[str], optional): Strategies to measure, each
            with the config's other settings. Defaults to None, the
            config's own.

    Returns:
        list[dict]: rows with ``drop_number``, ``backbone``, ``strategy``,
        ``gflops``, ``change`` (vs the first row), ``vs_oracle`` (None
        without an ``'oracle'`` row at that r), ``tokens``, ``params_m``
        and ``adaptive`` (see :func:`backbone_report`; then ``gflops`` and
        the changes are None).
    """
    rs = drop_numbers_of(cfg, drop_numbers)
    pruning = pruning_of(cfg)
    backbone = build_backbone(cfg)
    rows = []
    for strategy in strategies or [None]:
        run = pruning if strategy is None else pruning._replace(
            settings=dict(pruning.settings, strategy=strategy))
        for r in rs:
            apply_pruning(backbone, run, r)
            rep = backbone_report(backbone, tuple(shape))
            rows.append(dict(
                drop_number=r, backbone=type(backbone).__name__,
                strategy=getattr(backbone, 'strategy', None),
                gflops=rep['gflops'], tokens=rep['tokens'],
                params_m=rep['params_m'], adaptive=rep['adaptive']))
    base = rows[0]['gflops']
    oracle = {row['drop_number']: row['gflops'] for row in rows
              if row['strategy'] == 'oracle'}
    for row in rows:
        row['change'] = row['vs_oracle'] = None
        if row['gflops'] is None:
            continue
        if base is not None:
            row['change'] = row['gflops'] / base - 1
        if oracle.get(row['drop_number']):
            row['vs_oracle'] = row['gflops'] / oracle[row['drop_number']] - 1
    return rows
