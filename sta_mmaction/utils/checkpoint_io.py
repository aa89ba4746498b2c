"""Write checkpoints the way mmengine's Runner does; check and load them.

The demo saves random weights so that the real test loop (which loads a
checkpoint) runs with nothing downloaded; the tests use the same writer, so
what they load is shaped exactly like a trained mmengine checkpoint.

:func:`prepare_checkpoint` is the one check between a loaded file and the
model: ``CheckpointKeysHook`` runs it inside mmengine's
``Runner.load_checkpoint`` (before mmengine copies the weights with
``strict=False``, which would only log a misfit), and
:func:`load_recognizer_weights` runs it for the demo and the tools. Every
tensor of the model's ``state_dict`` must come from the file, with its shape,
a dtype of the same kind and finite values, and the file may hold nothing
else; only ``allow_partial_load`` lets keys be missing.
"""
import logging
import os
import os.path as osp
import re
import time
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from .checkpoint import CheckpointError, pop_last_loaded, short_keys
from .swin_convert import (check_swin_windows, convert_swin_state_dict,
                           describe_swin_state, is_original_swin)
from .videomae_convert import (convert_videomae_state_dict,
                               describe_videomae_state, is_original_videomae)

#: What mmengine's ``Runner.load_checkpoint`` does to every key
#: (``revise_keys``): strip one leading ``module.`` (DDP saves).
_MODULE = re.compile(r'^module\.')
#: Keys whose first dimension is the backbone's width.
_VIT_PATCH = 'backbone.patch_embed.projection.weight'
_SWIN_PATCH = 'backbone.patch_embed.proj.weight'
_HEAD = 'cls_head.fc_cls.weight'
_VIT_SIZES = {384: 'ViT-S', 768: 'ViT-B', 1024: 'ViT-L', 1280: 'ViT-H'}
#: (embed_dims, blocks of the third stage) -> Video Swin size.
_SWIN_SIZES = {
    (96, 6): 'Swin-T',
    (96, 18): 'Swin-S',
    (128, 18): 'Swin-B',
    (192, 18): 'Swin-L'
}
_DATASETS = {400: 'Kinetics-400', 174: 'Something-Something V2'}


def save_mmengine_checkpoint(state_dict: Mapping,
                             path: str,
                             cfg_text: str = '',
                             meta: Optional[Dict] = None) -> str:
    """Write a checkpoint shaped like ``Runner.save_checkpoint`` writes it.

    Its meta and message hub hold numpy scalars, a ``ConfigDict`` and
    ``HistoryBuffer`` objects, as a trained checkpoint does; torch's
    weights-only loader refuses them unless they are allow-listed (which
    ``sta_mmaction`` does).

    Args:
        state_dict (Mapping): Model weights; saved on the CPU.
        path (str): Output file.
        cfg_text (str): Config text stored in the meta. Defaults to ''.
        meta (dict, optional): Extra meta entries. Defaults to None.

    Returns:
        str: ``path``.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance(f'ckpt-{time.time_ns()}')
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_scalar('train/lr', 1e-3)
    hub.update_info('best_score', np.float64(0.5))
    full_meta = dict(
        epoch=1,
        iter=10,
        cfg=cfg_text,
        seed=np.int64(0),
        experiment_name='sta-test',
        time=time.asctime(),
        mmengine_version='0.10.7',
        dataset_meta=ConfigDict(num_classes=400))
    full_meta.update(meta or {})
    save_checkpoint(
        dict(
            meta=full_meta,
            state_dict={
                k: v.cpu()
                for k, v in state_dict.items()
            },
            message_hub=hub.state_dict()), str(path))
    return str(path)


def save_converted(state_dict: Mapping, dst: str, src: str, config: str,
                   kind: str, info: Mapping) -> str:
    """Write a converted original-release file as an MMAction2 checkpoint.

    The meta records where it came from (``<kind>_conversion``: the source
    file and its SHA-256, the config it was checked against, what the file
    holds) and the versions that wrote it; the optimizer state is not kept.

    Args:
        state_dict (Mapping): MMAction2-layout weights, already checked.
        dst (str): Output file; its folder is created.
        src (str): The original file.
        config (str): The config the weights were checked against.
        kind (str): ``'videomae'`` or ``'swin'``.
        info (Mapping): The converter's description of the source file.

    Returns:
        str: ``dst``.
    """
    import mmengine

    from ..version import __version__
    from .checkpoint import file_sha256
    meta = {
        f'{kind}_conversion':
        dict(
            source=osp.abspath(src),
            source_sha256=file_sha256(src),
            config=osp.abspath(config),
            **info),
        'sta_mmaction_version': __version__,
        'mmengine_version': str(mmengine.__version__),
        # str(): torch's TorchVersion would need full unpickling to load
        'torch_version': str(torch.__version__),
    }
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=dict(state_dict)), dst)
    return dst


def strip_module_prefix(state: Mapping[str, Any],
                        source: str) -> 'OrderedDict[str, Any]':
    """The keys as mmengine will load them: one ``module.`` stripped.

    Args:
        state (Mapping): A state dict.
        source (str): The file or URL, for the message.

    Raises:
        CheckpointError: Two keys become one (``module.x`` and ``x``), so one
            of them would be dropped silently.
    """
    out: 'OrderedDict[str, Any]' = OrderedDict()
    for key, value in state.items():
        new = _MODULE.sub('', key)
        if new in out:
            raise CheckpointError(
                f"{source} holds both '{new}' and 'module.{new}': one would "
                'silently replace the other. Keep one of them.')
        out[new] = value
    return out


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return 'bool'
    if dtype.is_complex:
        return 'complex'
    return 'float' if dtype.is_floating_point else 'integer'


def check_state_dict(model: nn.Module,
                     state: Mapping[str, Any],
                     source: str,
                     allow_partial: bool = False) -> List[str]:
    """Refuse a state dict that does not fill ``model`` exactly.

    Only the keys of ``model.state_dict()`` count (non-persistent buffers are
    not stored). A value must be a tensor of the model's shape whose dtype
    casts safely (float to float, integer to integer: never int/bool to
    float, nor complex), and floating values must be finite.

    Args:
        model (nn.Module): The recognizer (unwrapped).
        state (Mapping): The checkpoint's state dict; a leading ``module.``
            is stripped first, as mmengine does.
        source (str): The file or URL, for messages.
        allow_partial (bool): Let model keys be missing (they keep their
            initial weights). Problems of present keys, and keys the model
            lacks, still fail. Defaults to False.

    Returns:
        list[str]: The missing keys, sorted (empty unless ``allow_partial``).

    Raises:
        CheckpointError: The keys, with a diagnosis of what the file is.
    """
    state = strip_module_prefix(state, source)
    want = model.state_dict()
    missing = sorted(k for k in want if k not in state)
    unexpected = [k for k in state if k not in want]
    present = [k for k in want if k in state]
    not_tensor = [
        f'{k} ({type(state[k]).__name__})' for k in present
        if not isinstance(state[k], Tensor)
    ]
    tensors = [k for k in present if isinstance(state[k], Tensor)]
    shape = [
        f'{k}: file {tuple(state[k].shape)}, model {tuple(want[k].shape)}'
        for k in tensors if state[k].shape != want[k].shape
    ]
    dtype = [
        f'{k}: file {state[k].dtype}, model {want[k].dtype}' for k in tensors
        if _kind(state[k].dtype) != _kind(want[k].dtype)
    ]
    lines = []
    if missing and not allow_partial:
        lines.append(f'  missing ({len(missing)} of the model\'s '
                     f'{len(want)} keys): {short_keys(missing)}')
    if unexpected:
        lines.append(f'  unexpected ({len(unexpected)} keys the model '
                     f'lacks): {short_keys(unexpected)}')
    if not_tensor:
        lines.append(f'  not a tensor ({len(not_tensor)}): '
                     f'{short_keys(not_tensor)}')
    if shape:
        lines.append(f'  wrong shape ({len(shape)}): '
                     f'{short_keys(shape, 5, "; ")}')
    if dtype:
        lines.append(f'  dtype that does not cast safely ({len(dtype)}): '
                     f'{short_keys(dtype, 5, "; ")}')
    if lines:
        hints = _diagnose(state, want, missing, unexpected)
        raise CheckpointError('\n'.join(
            [f'{source} does not fit the model (no weights were loaded):'] +
            lines + [f'  diagnosis: {h}' for h in hints]))
    for key in tensors:
        value = state[key]
        if value.is_floating_point() or value.is_complex():
            bad = ~torch.isfinite(value)
            if bad.any():
                raise CheckpointError(
                    f'{source}: {key} holds {int(bad.sum())} NaN/Inf values '
                    f'(of {value.numel()}); the weights are broken (a '
                    'diverged run?). Use another checkpoint.')
    return missing if allow_partial else []


def _blocks(state: Mapping, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    return len({m.group(1) for m in map(pattern.match, state) if m})


def _width(state: Mapping) -> Optional[tuple]:
    """(family, embed_dims, blocks, size name) of a backbone, or None."""
    for key, family in ((_VIT_PATCH, 'ViT'), (_SWIN_PATCH, 'Swin')):
        value = state.get(key)
        if isinstance(value, Tensor) and value.dim() > 0:
            dims = int(value.shape[0])
            if family == 'ViT':
                name = _VIT_SIZES.get(dims)
                depth = _blocks(state, 'backbone.blocks.')
            else:
                depth = _blocks(state, 'backbone.layers.2.blocks.')
                name = _SWIN_SIZES.get((dims, depth))
            return family, dims, depth, name
    return None


def _diagnose(state: Mapping, want: Mapping, missing: List[str],
              unexpected: List[str]) -> List[str]:
    """What a misfit file looks like, from the shapes it holds."""
    hints = []
    file, model = _width(state), _width(want)
    if file and model and file[0] != model[0]:
        hints.append(f'the checkpoint is a {file[3] or file[0]}, the config '
                     f'a {model[3] or model[0]}')
    elif file and model and file[1:3] != model[1:3]:
        text = (f'checkpoint embed_dims {file[1]}, config {model[1]}'
                if file[1] != model[1] else
                f'checkpoint has {file[2]} blocks, config {model[2]}')
        hints.append(text + (f': this is a {file[3]} checkpoint'
                             if file[3] else ''))
    head, want_head = state.get(_HEAD), want.get(_HEAD)
    if (isinstance(head, Tensor) and want_head is not None
            and head.dim() == 2 and head.shape[0] != want_head.shape[0]):
        n, m = int(head.shape[0]), int(want_head.shape[0])
        hints.append(
            f'head has {n} classes{_dataset(n)}, config {m}{_dataset(m)}: '
            'fine-tuned on another dataset; use the config of that dataset')
    pos, want_pos = state.get('backbone.pos_embed'), want.get(
        'backbone.pos_embed')
    if (isinstance(pos, Tensor) and want_pos is not None and pos.dim() == 3
            and pos.shape[-1] == want_pos.shape[-1]
            and pos.shape[1] != want_pos.shape[1]):
        hints.append(f'pos_embed holds {pos.shape[1]} tokens, the config '
                     f'{want_pos.shape[1]}: another num_frames, img_size or '
                     'patch size')
    if missing and all(k.startswith('cls_head.') for k in missing):
        hints.append('it holds no classifier (a backbone-only file); for '
                     'features only, set allow_partial_load=True '
                     '(tools/test.py --allow-partial-load)')
    if any(k.startswith(('encoder.', 'decoder.')) for k in unexpected):
        hints.append('encoder/decoder keys: a VideoMAE pre-training '
                     'checkpoint; use the fine-tuned release')
    return hints


def _dataset(n: int) -> str:
    return f' ({_DATASETS[n]})' if n in _DATASETS else ''


def prepare_checkpoint(model: nn.Module,
                       checkpoint: Dict,
                       source: str,
                       allow_partial: bool = False) -> List[str]:
    """Make a loaded checkpoint loadable into ``model``, or refuse it.

    An original VideoMAE or Video Swin release file is converted in place
    to MMAction2's keys: the dict is emptied and refilled with
    ``state_dict`` (which mmengine copies into the model afterwards) and
    ``meta`` (for Video Swin, the file's meta plus ``swin_conversion``; its
    optimizer state is dropped). Then :func:`check_state_dict` runs on
    ``checkpoint['state_dict']`` (else the dict itself, as mmengine reads
    it), and for Video Swin files the stored relative position indices are
    compared with the model's.

    Args:
        model (nn.Module): The recognizer (unwrapped).
        checkpoint (dict): What the loader returned; may be rewritten.
        source (str): The file or URL, for messages.
        allow_partial (bool): See :func:`check_state_dict`. Defaults to
            False.

    Returns:
        list[str]: Keys the file lacks (only with ``allow_partial``).
    """
    if is_original_videomae(checkpoint):
        info = describe_videomae_state(checkpoint)
        converted = convert_videomae_state_dict(checkpoint, model)
        checkpoint.clear()
        checkpoint['state_dict'] = converted
        checkpoint['meta'] = dict(videomae_conversion=info)
        where = (f'under {info["wrapper"]!r}'
                 if info['wrapper'] else 'at the top level')
        pos = tuple(converted['backbone.pos_embed'].shape) \
            if 'backbone.pos_embed' in converted else None
        print_log(
            f'Converted an original VideoMAE checkpoint in memory ({source}):'
            f' {info["tensors"]} tensors {where}, ViT embed_dims='
            f'{info["embed_dims"]} x {info["depth"]} blocks, '
            f'{info["num_classes"]} classes, layer scale '
            f'{"yes" if info["layer_scale"] else "no"}; ' +
            ('position table copied from the file.'
             if info['learnable_pos_embed'] else
             f'pos_embed {pos} filled with MMAction2\'s sine-cosine table.'),
            logger='current')
    swin = is_original_swin(checkpoint)
    if swin:
        _convert_swin(checkpoint, source)
    state = checkpoint['state_dict'] if 'state_dict' in checkpoint \
        else checkpoint
    missing = check_state_dict(model, state, source, allow_partial)
    if swin:
        check_swin_windows(
            strip_module_prefix(state, source), model.state_dict(), source)
    if missing:
        print_log(
            f'Partial load of {source} (allow_partial_load): {len(missing)} '
            f'of the model\'s keys keep their initial (random) weights: '
            f'{short_keys(missing)}',
            logger='current',
            level=logging.WARNING)
    return missing


def _convert_swin(checkpoint: Dict, source: str) -> None:
    """Rewrite an original Video Swin file in place, and log it."""
    info = describe_swin_state(checkpoint)
    converted = convert_swin_state_dict(checkpoint)
    meta = checkpoint.get('meta') if info['wrapper'] else None
    checkpoint.clear()
    checkpoint['state_dict'] = converted
    checkpoint['meta'] = dict(
        meta if isinstance(meta, Mapping) else {}, swin_conversion=info)
    where = (f'under {info["wrapper"]!r}'
             if info['wrapper'] else 'at the top level')
    print_log(
        f'Converted an original Video Swin checkpoint in memory ({source}): '
        f'{info["tensors"]} tensors {where}, {info["size"] or "Swin"} '
        f'embed_dims={info["embed_dims"]}, depths {info["depths"]}, '
        f'{info["num_classes"]} classes, {info["window_tokens"]} tokens per '
        f'window; backbone.norm.* renamed {info["final_norm"]}.*, every '
        'other key kept.',
        logger='current')


def load_recognizer_weights(model: nn.Module,
                            checkpoint: str,
                            allow_partial: bool = False) -> Dict:
    """Load a checkpoint file or URL into a recognizer, or refuse it.

    The same path as ``tools/test.py``: mmengine's loaders (made safe by
    ``sta_mmaction``), then :func:`prepare_checkpoint`, then the copy.

    Args:
        model (nn.Module): The built recognizer.
        checkpoint (str): Path or URL.
        allow_partial (bool): Let model keys be missing. Defaults to False.

    Returns:
        dict: The loaded (possibly converted) checkpoint.

    Raises:
        CheckpointError: The file cannot be read or does not fit the model.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    record = pop_last_loaded()
    prepare_checkpoint(model, ckpt, checkpoint, allow_partial)
    state = ckpt['state_dict'] if 'state_dict' in ckpt else ckpt
    model.load_state_dict(
        strip_module_prefix(state, checkpoint), strict=not allow_partial)
    print_log(
        f'Loaded {checkpoint}' +
        (f' (file {record.local_file}, sha256 {record.sha256[:12]})'
         if record else ''),
        logger='current')
    return ckpt
