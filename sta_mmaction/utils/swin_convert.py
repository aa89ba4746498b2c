"""Read checkpoints of the original Video Swin release.

The paper's Swin rows were measured on the files of the original Video Swin
repository (SwinTransformer/Video-Swin-Transformer, release v1.0.4), e.g.
``swin_base_patch244_window877_kinetics400_22k.pth``. Their layout, read from
that repository's ``mmaction/models/backbones/swin_transformer.py`` and its
``mmcv_custom/runner/checkpoint.py`` (mmaction 0.x, mmcv 1.x):

* ``{'meta': ..., 'state_dict': ..., 'optimizer': ...}`` (``'amp'`` too when
  trained with apex); the recognizer's keys carry ``backbone.`` and
  ``cls_head.`` prefixes, as MMAction2 1.x's do;
* the backbone builds the same modules under the same names as MMAction2
  1.x's ``SwinTransformer3D`` (``patch_embed.{proj,norm}``,
  ``layers.i.blocks.j.{norm1,attn.{relative_position_bias_table,
  relative_position_index,qkv,proj},norm2,mlp.{fc1,fc2}}``,
  ``layers.i.downsample.{norm,reduction}``), with one exception: the norm
  after the last stage is ``norm``, where MMAction2 1.x names it after the
  stage it follows (``norm3`` for four stages, from ``out_indices=(3,)``)::

      backbone.norm.{weight,bias} -> backbone.norm{stages - 1}.{weight,bias}

* the head is ``I3DHead``'s ``cls_head.fc_cls.{weight,bias}`` in both.

The forwards agree too (same patch merging order, relative position index,
final norm before the head), so the renamed weights give the same outputs.
The relative position index buffer is stored; it depends only on the window
size, so :func:`check_swin_windows` compares it with the model's: a file of
another window layout is refused even where the table sizes happen to agree.

Only plain functions live here;
``tools/model_converters/convert_swin_checkpoint.py`` writes
converted files and ``prepare_checkpoint`` converts in memory.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from .checkpoint import CheckpointError
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
SWIN_SIZES = {
    (96, (2, 2, 6, 2)): 'Swin-T',
    (96, (2, 2, 18, 2)): 'Swin-S',
    (128, (2, 2, 18, 2)): 'Swin-B',
    (192, (2, 2, 18, 2)): 'Swin-L'
}


def _strip_module(state: Mapping) -> Dict[str, Any]:
    """Drop a ``module.`` prefix that every key carries (DDP saves)."""
    keys = [k for k in state if isinstance(k, str)]
    if keys and all(k.startswith('module.') for k in keys):
        return {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


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
    """The original-layout state dict inside a loaded file, and where it was.

    Args:
        checkpoint: What ``torch.load`` returned.

    Returns:
        tuple: The state dict with any ``module.`` prefix removed (None if the
        file is not an original Video Swin recognizer) and the wrapper key it
        sat under (None when the file is the state dict itself).
    """
    if not isinstance(checkpoint, Mapping):
        return None, None
    for key in WRAPPER_KEYS:
        if _looks_original(checkpoint.get(key)):
            return _strip_module(checkpoint[key]), key
    if _looks_original(checkpoint):
        return _strip_module(checkpoint), None
    return None, None


def is_original_swin(checkpoint: Any) -> bool:
    """Whether a loaded file is in the original Video Swin layout.

    MMAction2 1.x Swin checkpoints (``backbone.norm3``) are not, nor are
    ViT files.
    """
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
    """What an original-layout file holds, for logs and the converted meta.

    Args:
        checkpoint: A loaded original-layout file.

    Returns:
        dict: ``wrapper`` (key the state sat under, or None), ``tensors``,
        ``embed_dims``, ``depths`` (blocks per stage), ``size`` (``'Swin-B'``
        etc., or None), ``num_classes`` (None without a head),
        ``window_tokens`` (tokens per attention window, from the stored
        index, or None) and ``final_norm`` (the MMAction2 name it gets).

    Raises:
        CheckpointError: The file is not in the original layout.
    """
    state, wrapper = _require_state(checkpoint)
    patch, head = state[_PATCH], state.get('cls_head.fc_cls.weight')
    depths = _stage_depths(state)
    dims = int(patch.shape[0]) if isinstance(patch, Tensor) else None
    index = state.get(f'{_B}layers.0.blocks.0.attn.{_INDEX}')
    return dict(
        wrapper=wrapper,
        tensors=sum(isinstance(v, Tensor) for v in state.values()),
        embed_dims=dims,
        depths=depths,
        size=SWIN_SIZES.get((dims, tuple(depths))),
        num_classes=int(head.shape[0])
        if isinstance(head, Tensor) and head.dim() == 2 else None,
        window_tokens=int(index.shape[0])
        if isinstance(index, Tensor) and index.dim() == 2 else None,
        final_norm=f'{_B}norm{len(depths) - 1}')


def map_swin_key(key: str, stages: int) -> str:
    """The MMAction2 1.x name of an original key.

    Args:
        key (str): A key of the original layout (``module.`` stripped).
        stages (int): Stages of the backbone (4 for every released size).

    Returns:
        str: ``backbone.norm{stages - 1}.*`` for the final norm, else the key.
    """
    match = _FINAL_NORM.match(key)
    return f'{_B}norm{stages - 1}.{match.group(1)}' if match else key


def convert_swin_state_dict(checkpoint: Any) -> 'OrderedDict[str, Any]':
    """Rename an original Video Swin file's keys to MMAction2 1.x's.

    Nothing is dropped or added, so
    :func:`~sta_mmaction.utils.checkpoint_io.check_state_dict` sees every
    key of the file and refuses a file that does not fit the config, with
    the keys named.

    Args:
        checkpoint: A loaded original-layout file: the state dict itself or a
            dict holding it under ``'state_dict'``, ``'model'`` or
            ``'module'``; keys may carry a leading ``'module.'``.

    Returns:
        OrderedDict: The state dict in the file's order, values unchanged.

    Raises:
        CheckpointError: The file is not in the original layout.
    """
    state, _ = _require_state(checkpoint)
    stages = len(_stage_depths(state))
    return OrderedDict((map_swin_key(k, stages), v) for k, v in state.items())


def check_swin_windows(state: Mapping[str, Any], want: Mapping[str, Tensor],
                       source: str) -> None:
    """Refuse stored relative position indices that differ from the model's.

    The index is a function of ``window_size`` alone; equal shapes with
    other values mean the file was built for another window layout (e.g.
    ``(4, 4, 2)`` for ``(2, 4, 4)``), whose bias tables would be read at the
    wrong positions.

    Args:
        state (Mapping): The converted state dict.
        want (Mapping): The model's state dict.
        source (str): The file or URL, for the message.

    Raises:
        CheckpointError: The keys whose indices differ.
    """
    differ = [
        k for k, v in state.items()
        if k.endswith(_INDEX) and isinstance(v, Tensor) and k in want
        and v.shape == want[k].shape and not torch.equal(
            v.to(want[k].device, want[k].dtype), want[k])
    ]
    if differ:
        raise CheckpointError(
            f'{source}: the stored {_INDEX} of {len(differ)} attention '
            f'layers differs from the model\'s ({_short(differ)}): the file '
            'was trained with another window_size. Set '
            'model.backbone.window_size to the file\'s (Video Swin: (8, 7, 7)'
            ' on Kinetics-400, (16, 7, 7) on Something-Something V2).')
