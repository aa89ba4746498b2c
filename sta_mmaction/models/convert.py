"""Turn a live stock MMAction2 backbone into its STA version, in place.

Like ToMe's patches, the conversion swaps the backbone's class for its STA
subclass and calls its ``init_sta``. The STA classes add no parameter or
buffer, so the weights and any wrapper stay as they are.
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
STA_VERSIONS: Dict[type, type] = {VisionTransformer: STAViT,
                                  SwinTransformer3D: STASwin3D}


def sta_class(cls: type) -> Type[nn.Module]:
    """The STA class (``STAViT`` or ``STASwin3D``) ``cls`` converts to.

    Args:
        cls (type): A stock backbone class of :data:`STA_VERSIONS`, or an STA
            one. Other subclasses of the stock ones are refused: swapping
            their class would drop their own code.
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


def convert_backbone(backbone: nn.Module, drop_number: int,
                     strategy: Optional[str] = None,
                     seed: Optional[int] = None, **settings) -> nn.Module:
    """Turn a stock (or STA) backbone into its STA version, in place.

    A refused setting raises the STA class's ``ValueError`` and leaves the
    backbone as it was. Nothing is built, copied or drawn: the result
    computes exactly what the STA backbone with the same settings and
    weights computes. A setting not given keeps its current value.

    Args:
        backbone (nn.Module): The live backbone (unwrapped).
        drop_number (int): ``r`` of the STA class.
        strategy (str, optional): Defaults to None, the backbone's or 'sta'.
        seed (int, optional): Defaults to None, the backbone's or None.
        **settings: Other STA settings (``prop_attn`` for ``STAViT``).
            Defaults to the backbone's own, else the class's.

    Returns:
        nn.Module: ``backbone`` itself, now of the STA class.
    """
    sta_cls = sta_version(backbone)
    check_known(f'convert_backbone (to {sta_cls.__name__})', settings,
                sta_cls.STA_SETTINGS, what='setting')
    given = dict(settings, strategy=strategy, seed=seed)
    wanted = {k: getattr(backbone, k) for k in sta_cls.STA_SETTINGS
              if isinstance(backbone, sta_cls)}
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
