"""Read checkpoints of the original Video Swin release.

The paper's Swin rows were measured on the files of the original Video Swin
repository (SwinTransformer/Video-Swin-Transformer v1.0.4, mmaction 0.x), e.g.
``swin_base_patch244_window877_kinetics400_22k.pth``: their keys are those of
MMAction2 1.x's ``SwinTransformer3D`` recognizer, except the norm after the
last stage, which MMAction2 1.x names after that stage (``norm3``)::

    backbone.norm.{weight,bias} -> backbone.norm{stages - 1}.{weight,bias}

The forwards agree too, so the renamed weights give the same outputs.
:func:`check_swin_windows` refuses a file of another window layout even where
the table sizes happen to agree.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from .checkpoint import CheckpointError, _find_state, _strip_module
from .checkpoint import short_keys as _short

#: Where a file may keep its state dict: mmcv's ``state_dict`` first.
WRAPPER_KEYS = ('state_dict', 'model', 'module')

_B = 'backbone.'
_PATCH = _B + 'patch_embed.proj.weight'
_TABLE = re.compile(r'backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.'
                    r'relative_position_bias_table$')
_INDEX = 'relative_position_index'
_FINAL_NORM = re.compile(r'backbone\.norm\.(weight|bias)$')
_STAGE_NORM = re.compile(r'backbone\.norm\d+\.')
#: (embed_dims, blocks per stage) -> the Video Swin size.
SWIN_SIZES = {(96, (2, 2, 6, 2)): 'Swin-T', (96, (2, 2, 18, 2)): 'Swin-S',
              (128, (2, 2, 18, 2)): 'Swin-B', (192, (2, 2, 18, 2)): 'Swin-L'}


def _looks_original(state: Any) -> bool:
    """A Video Swin recognizer whose last norm is ``backbone.norm``."""
    if not isinstance(state, Mapping):
        return False
    state = _strip_module(state)
    keys = [k for k in state if isinstance(k, str)]
    return (_PATCH in state and any(map(_TABLE.match, keys))
            and any(map(_FINAL_NORM.match, keys))
            and not any(map(_STAGE_NORM.match, keys)))


def find_swin_state(
        checkpoint: Any) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """The original-layout state dict in a loaded file (``module.``
    stripped; None if there is none) and its wrapper key (None at the top
    level)."""
    return _find_state(checkpoint, WRAPPER_KEYS, _looks_original)


def is_original_swin(checkpoint: Any) -> bool:
    """Whether a loaded file is in the original Video Swin layout (MMAction2
    1.x Swin checkpoints, with ``backbone.norm3``, and ViT files are not)."""
    return find_swin_state(checkpoint)[0] is not None


def _require_state(checkpoint: Any) -> Tuple[Dict[str, Any], Optional[str]]:
    state, wrapper = find_swin_state(checkpoint)
    if state is not None:
        return state, wrapper
    keys = ([str(k) for k in checkpoint]
            if isinstance(checkpoint, Mapping) else [])
    raise CheckpointError(
        'Not an original Video Swin checkpoint: expected '
        f'{_PATCH!r}, relative position tables and backbone.norm.* (no '
        f'backbone.norm<i>.*) at the top level or under '
        f'{", ".join(map(repr, WRAPPER_KEYS))}; got '
        f'{type(checkpoint).__name__} with top-level keys {_short(keys)}. '
        'An MMAction2 1.x Swin checkpoint (backbone.norm3.*) loads without '
        'conversion.')


def _stage_depths(state: Mapping) -> List[int]:
    """Blocks per stage, from the relative position tables."""
    blocks: Dict[int, set] = {}
    for key in state:
        match = _TABLE.match(key) if isinstance(key, str) else None
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(match.group(2))
    return [len(blocks.get(i, ())) for i in range(max(blocks) + 1)]


def describe_swin_state(checkpoint: Any) -> Dict[str, Any]:
    """What an original-layout file holds, for logs and the converted meta;
    ``CheckpointError`` if the file is not in the original layout.

    Returns:
        dict: ``wrapper`` (key the state sat under, or None), ``tensors``,
        ``embed_dims``, ``depths``, ``size`` (``'Swin-B'`` etc., or None),
        ``num_classes`` and ``window_tokens`` (None if unknown) and
        ``final_norm`` (the MMAction2 name it gets).
    """
    state, wrapper = _require_state(checkpoint)
    patch, head = state[_PATCH], state.get('cls_head.fc_cls.weight')
    depths = _stage_depths(state)
    dims = int(patch.shape[0]) if isinstance(patch, Tensor) else None
    index = state.get(f'{_B}layers.0.blocks.0.attn.{_INDEX}')
    return dict(
        wrapper=wrapper,
        tensors=sum(isinstance(v, Tensor) for v in state.values()),
        embed_dims=dims, depths=depths,
        size=SWIN_SIZES.get((dims, tuple(depths))),
        num_classes=int(head.shape[0])
        if isinstance(head, Tensor) and head.dim() == 2 else None,
        window_tokens=int(index.shape[0])
        if isinstance(index, Tensor) and index.dim() == 2 else None,
        final_norm=f'{_B}norm{len(depths) - 1}')


def map_swin_key(key: str, stages: int) -> str:
    """The MMAction2 1.x name of an original key: the key itself, except
    ``backbone.norm{stages - 1}.*`` for the final norm.

    Args:
        key (str): A key of the original layout (``module.`` stripped).
        stages (int): Stages of the backbone (4 for every released size).
    """
    match = _FINAL_NORM.match(key)
    return f'{_B}norm{stages - 1}.{match.group(1)}' if match else key


def convert_swin_state_dict(checkpoint: Any) -> 'OrderedDict[str, Any]':
    """Rename an original Video Swin file's keys to MMAction2 1.x's, in the
    file's order, values unchanged (``CheckpointError`` if it is not in the
    original layout). Nothing is dropped or added, so ``check_state_dict``
    sees every key and refuses, with the keys named, a file that misfits.

    Args:
        checkpoint: A loaded original-layout file (see :data:`WRAPPER_KEYS`);
            keys may carry a leading ``'module.'``.
    """
    state, _ = _require_state(checkpoint)
    stages = len(_stage_depths(state))
    return OrderedDict((map_swin_key(k, stages), v) for k, v in state.items())


def check_swin_windows(state: Mapping[str, Any], want: Mapping[str, Tensor],
                       source: str) -> None:
    """Refuse (``CheckpointError``, naming the keys) stored relative position
    indices that differ from the model's. The index depends on
    ``window_size`` alone; equal shapes with other values mean another
    window layout, whose bias tables would be read at the wrong positions.

    Args:
        state (Mapping): The converted state dict.
        want (Mapping): The model's state dict.
        source (str): The file or URL, for the message.
    """
    differ = [k for k, v in state.items()
              if k.endswith(_INDEX) and isinstance(v, Tensor) and k in want
              and v.shape == want[k].shape and not torch.equal(
                  v.to(want[k].device, want[k].dtype), want[k])]
    if differ:
        raise CheckpointError(
            f'{source}: the stored {_INDEX} of {len(differ)} attention '
            f'layers differs from the model\'s ({_short(differ)}): the file '
            'was trained with another window_size. Set '
            'model.backbone.window_size to the file\'s (Video Swin: (8, 7, 7)'
            ' on Kinetics-400, (16, 7, 7) on Something-Something V2).')
