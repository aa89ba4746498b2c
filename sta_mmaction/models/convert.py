"""Turn a live stock MMAction2 backbone into its STA version, in place.

Like ToMe's patches, the conversion swaps the backbone's class for its STA
subclass (``VisionTransformer`` -> ``STAViT``, ``SwinTransformer3D`` ->
``STASwin3D``) and calls the STA class's ``init_sta``, the same method its
``__init__`` ends with. The STA classes add no parameter or buffer, so the
weights, their device and dtype, and any distributed wrapper around the model
stay as they are; only the forward changes.
"""
from typing import Dict, Optional, Type

from mmaction.models.backbones.swin import SwinTransformer3D
from mmaction.models.backbones.vit_mae import VisionTransformer
from mmengine.model import is_model_wrapper
from torch import nn

from .sta_swin import STASwin3D
from .sta_vit import STAViT
from .strategy import check_known

#: Stock MMAction2 backbone -> its STA version, which adds no weights.
STA_VERSIONS: Dict[type, type] = {
    VisionTransformer: STAViT,
    SwinTransformer3D: STASwin3D,
}


def sta_class(cls: type) -> Type[nn.Module]:
    """The STA class a backbone class converts to.

    Args:
        cls (type): ``VisionTransformer`` or ``SwinTransformer3D``, or
            already ``STAViT`` or ``STASwin3D``. Subclasses of the stock
            backbones other than the STA ones are refused: swapping their
            class would drop their own code.

    Returns:
        type: ``STAViT`` or ``STASwin3D``.
    """
    if cls in STA_VERSIONS:
        return STA_VERSIONS[cls]
    if cls in STA_VERSIONS.values():
        return cls
    allowed = ', '.join(
        sorted(c.__name__ for pair in STA_VERSIONS.items() for c in pair))
    raise ValueError(
        f'STA cannot prune a {cls.__module__}.{cls.__name__} backbone; it '
        f'supports exactly these backbone types: {allowed}.')


def sta_version(backbone: nn.Module) -> Type[nn.Module]:
    """The STA class a live backbone converts to (see :func:`sta_class`)."""
    return sta_class(type(backbone))


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a distributed (or other) wrapper."""
    return model.module if is_model_wrapper(model) else model


def convert_backbone(backbone: nn.Module,
                     drop_number: int,
                     strategy: Optional[str] = None,
                     seed: Optional[int] = None,
                     **settings) -> nn.Module:
    """Turn a stock backbone into its STA version, in place.

    The backbone's class is swapped and the STA class's ``init_sta`` sets
    and checks the settings from the model itself, so a setting STA cannot
    prune (a clip length the schedule cannot cut, ``return_feat_map=True``,
    ``r`` too large for the grid, an unknown setting ...) raises the same
    ``ValueError`` as the STA backbone built with it, and leaves the
    backbone as it was. Nothing is built, no weight is copied or moved and
    no random number is drawn; the converted backbone computes exactly what
    the STA backbone with the same settings and weights computes.

    An STA backbone is converted again with the new settings; a setting not
    given keeps its current value (the class default on a stock backbone).

    Args:
        backbone (nn.Module): The live backbone (unwrapped).
        drop_number (int): ``r`` of the STA class.
        strategy (str, optional): The STA class's ``strategy``. Defaults to
            None: the backbone's own, else ``'sta'``.
        seed (int, optional): The STA class's ``seed``. Defaults to None:
            the backbone's own, else None.
        **settings: Other STA settings of the class (``prop_attn`` for
            ``STAViT``). Defaults to the backbone's own, else the class's.

    Returns:
        nn.Module: ``backbone`` itself, now of the STA class.
    """
    sta_cls = sta_version(backbone)
    check_known(f'convert_backbone (to {sta_cls.__name__})', settings,
                sta_cls.STA_SETTINGS, what='setting')
    given = dict(settings, strategy=strategy, seed=seed)
    wanted = {
        k: getattr(backbone, k)
        for k in sta_cls.STA_SETTINGS if isinstance(backbone, sta_cls)
    }
    wanted.update((k, v) for k, v in given.items() if v is not None)
    wanted.pop('drop_number', None)
    old_cls = type(backbone)
    backbone.__class__ = sta_cls
    try:
        backbone.init_sta(drop_number, **wanted)
    except BaseException:
        backbone.__class__ = old_cls
        raise
    return backbone
