"""What a config prunes with: the one answer every tool reads.

A config prunes with an STA backbone, or with a stock one and an
``STAPruningHook`` in ``custom_hooks``. :func:`pruning_of` reads either
without building anything, and :func:`apply_pruning` gives a built backbone
those settings, so every tool sees the model the test run sees.
"""
from typing import Any, Dict, NamedTuple, Optional

from mmaction.registry import MODELS
from torch import nn

from .convert import STA_VERSIONS, convert_backbone, sta_class
from .strategy import check_arguments

#: Keys of an ``STAPruningHook`` entry that are not STA settings.
_HOOK_KEYS = ('type', 'priority', 'drop_number')


class Pruning(NamedTuple):
    """How a config's test run prunes.

    ``backbone``: the class that runs; ``drop_number`` (``r``) and
    ``strategy``: None when nothing prunes; ``settings``: the STA settings
    the config gives, but ``r``; ``hook``: whether an ``STAPruningHook``
    sets them.
    """
    backbone: type
    drop_number: Optional[int]
    strategy: Optional[str]
    settings: Dict[str, Any]
    hook: bool


def pruning_of(cfg) -> Pruning:
    """The backbone class, ``r`` and settings that ``cfg``'s test runs.

    Args:
        cfg (Config): A test config.

    Raises:
        ValueError: For more than one ``STAPruningHook``, an unregistered
            backbone type, an argument an STA backbone does not take, or a
            hook on a backbone STA cannot convert.
    """
    backbone_cfg = cfg.model.get('backbone') or {}
    kind = backbone_cfg.get('type')
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        raise ValueError(f'model.backbone.type={kind!r} is not a registered '
                         'model; import the package that registers it '
                         "(custom_imports=dict(imports=['sta_mmaction'])).")
    hooks = [h for h in cfg.get('custom_hooks', None) or []
             if h.get('type') == 'STAPruningHook']
    if len(hooks) > 1:
        raise ValueError(
            f'custom_hooks holds {len(hooks)} STAPruningHook entries '
            f'(drop_number {[h.get("drop_number") for h in hooks]}); keep '
            'one, so that one r and one strategy run.')
    is_sta = cls in STA_VERSIONS.values()
    if is_sta:
        # the constructor says the same, but only after the Runner's dumps
        check_arguments(cls, {k: v for k, v in backbone_cfg.items()
                              if k != 'type'})
    settings = {k: v for k, v in backbone_cfg.items()
                if is_sta and k in cls.STA_SETTINGS}
    r = settings.pop('drop_number', 0) if is_sta else None
    if hooks:
        cls = sta_class(cls)
        settings.update((k, v) for k, v in hooks[0].items()
                        if k not in _HOOK_KEYS and v is not None)
        r = hooks[0].get('drop_number')
    elif not is_sta:
        return Pruning(cls, None, None, {}, False)
    return Pruning(cls, r, settings.get('strategy', 'sta'), settings,
                   bool(hooks))


def apply_pruning(backbone: nn.Module, pruning: Pruning,
                  drop_number: Optional[int] = None) -> nn.Module:
    """Give a backbone built from the config its test run's pruning.

    Args:
        backbone (nn.Module): ``model.backbone`` as the config builds it.
        pruning (Pruning): :func:`pruning_of` of that config.
        drop_number (int, optional): Another ``r``, with the same settings.
            Defaults to None, the config's.

    Returns:
        nn.Module: ``backbone``, converted in place where the config prunes.
    """
    r = pruning.drop_number if drop_number is None else drop_number
    if pruning.drop_number is None:
        if r:
            raise ValueError(
                f'drop_number={r}: the backbone is a '
                f'{type(backbone).__name__} and custom_hooks hold no '
                'STAPruningHook, so nothing prunes it. Use an STA backbone '
                "(STAViT, STASwin3D) or add dict(type='STAPruningHook', "
                'drop_number=...) to custom_hooks.')
        return backbone
    return convert_backbone(backbone, r, **pruning.settings)


def set_drop_number(cfg, drop_number: int) -> None:
    """Make ``cfg``'s test run prune with ``drop_number``, where it prunes.

    The ``STAPruningHook`` entry if any, else the STA backbone; a config
    that prunes nothing is a ``ValueError`` unless ``r`` is 0.

    Args:
        cfg (Config): A test config, changed in place.
        drop_number (int): ``r``.
    """
    pruning = pruning_of(cfg)
    if pruning.hook:
        for hook in cfg.custom_hooks:
            if hook.get('type') == 'STAPruningHook':
                hook['drop_number'] = drop_number
    elif pruning.drop_number is not None:
        cfg.model.backbone.drop_number = drop_number
    elif drop_number:
        raise ValueError(
            f'drop_number={drop_number}: model.backbone.type='
            f'{cfg.model.backbone.get("type")!r} and custom_hooks hold no '
            'STAPruningHook, so nothing prunes; use an STA backbone or add '
            "dict(type='STAPruningHook', drop_number=...) to custom_hooks.")
