"""Check a loaded checkpoint against the model with
:func:`prepare_checkpoint` (run by ``CheckpointKeysHook`` before mmengine's
non-strict copy, which would only log a misfit, and by
:func:`load_recognizer_weights`); write checkpoints as mmengine's Runner does.
"""
import ast
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

from .checkpoint import (CheckpointError, file_sha256, local_checkpoint_file,
                         short_keys)
from .swin_convert import (SWIN_SIZES, check_swin_windows,
                           convert_swin_state_dict, describe_swin_state,
                           is_original_swin)
from .videomae_convert import (convert_videomae_state_dict,
                               describe_videomae_state, is_original_videomae)

_VIT_SIZES = {384: 'ViT-S', 768: 'ViT-B', 1024: 'ViT-L', 1280: 'ViT-H'}
#: (embed_dims, blocks of the third stage) -> Video Swin size.
_SWIN_SIZES = {(d, depths[2]): n for (d, depths), n in SWIN_SIZES.items()}
_DATASETS = {400: ' (Kinetics-400)', 174: ' (Something-Something V2)'}


def save_mmengine_checkpoint(state_dict: Mapping, path: str,
                             cfg_text: str = '',
                             meta: Optional[Dict] = None) -> str:
    """Write a checkpoint as ``Runner.save_checkpoint`` does (numpy scalars,
    a ``ConfigDict`` and ``HistoryBuffer``s in its meta and message hub);
    return ``path``.

    Args:
        state_dict (Mapping): Model weights; saved on the CPU.
        path (str): Output file.
        cfg_text (str): Config text stored in the meta. Defaults to ''.
        meta (dict, optional): Extra meta entries. Defaults to None.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance(f'ckpt-{time.time_ns()}')
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_scalar('train/lr', 1e-3)
    hub.update_info('best_score', np.float64(0.5))
    full_meta = dict(epoch=1, iter=10, cfg=cfg_text, seed=np.int64(0),
                     experiment_name='sta-test', time=time.asctime(),
                     mmengine_version='0.10.7',
                     dataset_meta=ConfigDict(num_classes=400))
    full_meta.update(meta or {})
    state = {k: v.cpu() for k, v in state_dict.items()}
    save_checkpoint(dict(meta=full_meta, state_dict=state,
                         message_hub=hub.state_dict()), str(path))
    return str(path)


def save_converted(state_dict: Mapping, dst: str, src: str, config: str,
                   kind: str, info: Mapping) -> str:
    """Write a converted original release file as an MMAction2 checkpoint
    whose meta records the source and its SHA-256, the config, what the file
    holds (``<kind>_conversion``) and the versions that wrote it; return
    ``dst``.

    Args:
        state_dict (Mapping): MMAction2-layout weights, already checked.
        dst (str): Output file; its folder is created.
        src (str): The original file.
        config (str): The config the weights were checked against.
        kind (str): ``'videomae'`` or ``'swin'``.
        info (Mapping): The converter's description of the source file.
    """
    import mmengine

    from ..version import __version__
    meta = {f'{kind}_conversion': dict(source=osp.abspath(src),
                                       source_sha256=file_sha256(src),
                                       config=osp.abspath(config), **info),
            'sta_mmaction_version': __version__,
            'mmengine_version': str(mmengine.__version__),
            # str(): torch's TorchVersion would need full unpickling to load
            'torch_version': str(torch.__version__)}
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=dict(state_dict)), dst)
    return dst


def strip_module_prefix(state: Mapping[str, Any],
                        source: str) -> 'OrderedDict[str, Any]':
    """The keys as mmengine loads them: one leading ``module.`` stripped.
    Raises ``CheckpointError`` if two keys become one (``module.x``, ``x``).

    Args:
        state (Mapping): A state dict.
        source (str): The file or URL, for the message.
    """
    out: 'OrderedDict[str, Any]' = OrderedDict()
    for key, value in state.items():
        new = key[len('module.'):] if key.startswith('module.') else key
        if new in out:
            raise CheckpointError(
                f"{source} holds both '{new}' and 'module.{new}': one would "
                'silently replace the other. Keep one of them.')
        out[new] = value
    return out


def _kind(dtype: torch.dtype) -> str:
    """Dtypes of one kind cast safely into each other; others do not."""
    return ('bool' if dtype == torch.bool else 'complex' if dtype.is_complex
            else 'float' if dtype.is_floating_point else 'integer')


def check_state_dict(model: nn.Module, state: Mapping[str, Any],
                     source: str, allow_partial: bool = False) -> List[str]:
    """Refuse a state dict that does not fill ``model`` exactly: every model
    key needs a tensor of its shape, of a dtype that casts safely (float to
    float, integer to integer), with finite values; no other key is allowed.

    Args:
        model (nn.Module): The recognizer (unwrapped).
        state (Mapping): The checkpoint's state dict; a leading ``module.``
            is stripped first, as mmengine does.
        source (str): The file or URL, for messages.
        allow_partial (bool): Let model keys be missing (they keep their
            initial weights); problems of present keys, and keys the model
            lacks, still fail. Defaults to False.

    Returns:
        list[str]: The missing keys, sorted (empty unless ``allow_partial``).

    Raises:
        CheckpointError: The misfit keys, and a diagnosis of the file.
    """
    state, want = strip_module_prefix(state, source), model.state_dict()
    missing = sorted(k for k in want if k not in state)
    unexpected = [k for k in state if k not in want]
    present = [k for k in want if k in state]
    tensors = [k for k in present if isinstance(state[k], Tensor)]
    not_tensor = [f'{k} ({type(state[k]).__name__})' for k in present
                  if k not in tensors]
    shape = [f'{k}: file {tuple(state[k].shape)}, model '
             f'{tuple(want[k].shape)}' for k in tensors
             if state[k].shape != want[k].shape]
    dtype = [f'{k}: file {state[k].dtype}, model {want[k].dtype}'
             for k in tensors if _kind(state[k].dtype) != _kind(want[k].dtype)]
    lines = [
        f'  {title}: {short_keys(keys, n, sep)}' for title, keys, n, sep in (
            (f"missing ({len(missing)} of the model's {len(want)} keys)",
             [] if allow_partial else missing, 8, ', '),
            (f'unexpected ({len(unexpected)} keys the model lacks)',
             unexpected, 8, ', '),
            (f'not a tensor ({len(not_tensor)})', not_tensor, 8, ', '),
            (f'wrong shape ({len(shape)})', shape, 5, '; '),
            (f'dtype that does not cast safely ({len(dtype)})', dtype, 5,
             '; '),
        ) if keys
    ]
    if lines:
        raise CheckpointError('\n'.join(
            [f'{source} does not fit the model (no weights were loaded):'] +
            lines + [f'  diagnosis: {h}'
                     for h in _diagnose(state, want, missing, unexpected)]))
    for key in tensors:
        if state[key].is_floating_point() or state[key].is_complex():
            bad = int((~torch.isfinite(state[key])).sum())
            if bad:
                raise CheckpointError(
                    f'{source}: {key} holds {bad} NaN/Inf values (of '
                    f'{state[key].numel()}); the weights are broken (a '
                    'diverged run?). Use another checkpoint.')
    return missing if allow_partial else []


def _backbone(state: Mapping) -> Optional[tuple]:
    """(family, embed_dims, blocks, size name) of a backbone, or None."""
    for family, patch, blocks in (('ViT', 'projection', 'backbone.blocks.'),
                                  ('Swin', 'proj',
                                   'backbone.layers.2.blocks.')):
        value = state.get(f'backbone.patch_embed.{patch}.weight')
        if isinstance(value, Tensor) and value.dim() > 0:
            dims = int(value.shape[0])
            found = (re.match(re.escape(blocks) + r'(\d+)\.', k)
                     for k in state)
            depth = len({m.group(1) for m in found if m})
            name = (_VIT_SIZES.get(dims) if family == 'ViT' else
                    _SWIN_SIZES.get((dims, depth)))
            return family, dims, depth, name
    return None


def _diagnose(state: Mapping, want: Mapping, missing: List[str],
              unexpected: List[str]) -> List[str]:
    """What a misfit file looks like, from the shapes it holds."""
    hints = []
    file, model = _backbone(state), _backbone(want)
    if file and model and file[0] != model[0]:
        hints.append(f'the checkpoint is a {file[3] or file[0]}, the config '
                     f'a {model[3] or model[0]}')
    elif file and model and file[1:3] != model[1:3]:
        hints.append((f'checkpoint embed_dims {file[1]}, config {model[1]}'
                      if file[1] != model[1] else
                      f'checkpoint has {file[2]} blocks, config {model[2]}') +
                     (f': this is a {file[3]} checkpoint' if file[3] else ''))
    head, want_head = (d.get('cls_head.fc_cls.weight') for d in (state, want))
    if (isinstance(head, Tensor) and want_head is not None
            and head.dim() == 2 and head.shape[0] != want_head.shape[0]):
        n, m = int(head.shape[0]), int(want_head.shape[0])
        hints.append(f'head has {n} classes{_DATASETS.get(n, "")}, config '
                     f'{m}{_DATASETS.get(m, "")}: fine-tuned on another '
                     'dataset; use the config of that dataset')
    pos, want_pos = (d.get('backbone.pos_embed') for d in (state, want))
    if (isinstance(pos, Tensor) and want_pos is not None and pos.dim() == 3
            and pos.shape[-1] == want_pos.shape[-1]
            and pos.shape[1] != want_pos.shape[1]):
        hints.append(f'pos_embed holds {pos.shape[1]} tokens, the config '
                     f'{want_pos.shape[1]}: another num_frames, img_size or '
                     'patch size')
    if missing and all(k.startswith('cls_head.') for k in missing):
        hints.append('it holds no classifier (a backbone-only file); for '
                     'features only, opt in to a partial load: '
                     'tools/test.py --allow-partial-load, or '
                     'model.allow_partial_load=True in an STARecognizer3D '
                     'config (init_recognizer, MMAction2Inferencer)')
    if any(k.startswith(('encoder.', 'decoder.')) for k in unexpected):
        hints.append('encoder/decoder keys: a VideoMAE pre-training '
                     'checkpoint; use the fine-tuned release')
    return hints


def _config_value(node: ast.AST) -> Any:
    """A config expression's value without running it: literals and
    ``dict(...)`` calls; None for anything else."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args):
        return {k.arg: _config_value(k.value) for k in node.keywords if k.arg}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _meta_backbone(checkpoint: Mapping) -> Dict[str, Any]:
    """``model.backbone`` of the config text mmengine stores in a
    checkpoint's ``meta.cfg``, read with ``ast`` (never executed); {} if
    there is none."""
    meta = checkpoint.get('meta')
    text = meta.get('cfg') if isinstance(meta, Mapping) else None
    try:
        tree = ast.parse(text) if isinstance(text, str) else None
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        tree = None
    for node in getattr(tree, 'body', []):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model'
                for t in node.targets):
            backbone = (_config_value(node.value) or {}).get('backbone')
            return backbone if isinstance(backbone, dict) else {}
    return {}


def check_meta_settings(model: nn.Module, checkpoint: Mapping,
                        source: str) -> None:
    """Refuse (``CheckpointError``) a checkpoint whose ``meta.cfg`` built
    the backbone with another ``num_heads`` or norm ``eps`` than ``model``
    has: settings that no tensor shape shows, so every shape check passes
    and the outputs are wrong.

    Args:
        model (nn.Module): The recognizer (unwrapped).
        checkpoint (Mapping): The loaded file.
        source (str): The file or URL, for the message.
    """
    saved = _meta_backbone(checkpoint)
    modules = list(getattr(model, 'backbone', model).modules())
    norm = saved.get('norm_cfg')
    for name, value, have in (
            ('num_heads', saved.get('num_heads'),
             {m.num_heads for m in modules
              if isinstance(getattr(m, 'num_heads', None), int)}),
            ('norm_cfg.eps', norm.get('eps') if isinstance(norm, dict)
             else None,
             {m.eps for m in modules if isinstance(m, nn.LayerNorm)})):
        if (isinstance(value, (int, float)) and not isinstance(value, bool)
                and len(have) == 1 and value not in have):
            raise CheckpointError(
                f'{source} was trained with model.backbone.{name}={value} '
                f'(its meta.cfg), but this model has {name}={have.pop()}: '
                'no tensor shape shows the difference, and the outputs '
                f'would be wrong. Set model.backbone.{name}={value}.')


def prepare_checkpoint(model: nn.Module, checkpoint: Dict, source: str,
                       allow_partial: bool = False) -> List[str]:
    """Make a loaded checkpoint loadable into ``model``, or refuse it; return
    the keys the file lacks (only with ``allow_partial``).

    An original VideoMAE or Video Swin release file is converted in place
    (refilled with MMAction2's ``state_dict`` and a ``meta`` recording the
    conversion); then :func:`check_state_dict` runs, a Video Swin file's
    stored window indices are compared with the model's, and the settings
    of the file's ``meta.cfg`` that shapes do not show
    (:func:`check_meta_settings`).

    Args:
        model (nn.Module): The recognizer (unwrapped).
        checkpoint (dict): What the loader returned; may be rewritten.
        source (str): The file or URL, for messages.
        allow_partial (bool): See check_state_dict. Defaults to False.
    """
    swin = is_original_swin(checkpoint)
    if swin or is_original_videomae(checkpoint):
        _convert_in_place(model, checkpoint, source, swin)
    state = checkpoint.get('state_dict', checkpoint)
    missing = check_state_dict(model, state, source, allow_partial)
    # an MMAction2-layout Swin file stores its window indices too
    check_swin_windows(strip_module_prefix(state, source),
                       model.state_dict(), source)
    check_meta_settings(model, checkpoint, source)
    if missing:
        print_log(
            f'Partial load of {source} (allow_partial_load): {len(missing)} '
            f'of the model\'s keys keep their initial (random) weights: '
            f'{short_keys(missing)}', logger='current', level=logging.WARNING)
    return missing


def _convert_in_place(model: nn.Module, checkpoint: Dict, source: str,
                      swin: bool) -> None:
    """Refill an original release file with MMAction2's keys, and log it."""
    if swin:
        info = describe_swin_state(checkpoint)
        state = convert_swin_state_dict(checkpoint)
        meta = checkpoint.get('meta') if info['wrapper'] else None
        detail = (f'{info["size"] or "Swin"} embed_dims={info["embed_dims"]}'
                  f', depths {info["depths"]}; backbone.norm.* renamed '
                  f'{info["final_norm"]}.*')
    else:
        info = describe_videomae_state(checkpoint)
        state, meta = convert_videomae_state_dict(checkpoint, model), None
        pos = state.get('backbone.pos_embed', torch.empty(0)).shape
        detail = (f'ViT embed_dims={info["embed_dims"]} x {info["depth"]} '
                  'blocks; ' + ('position table copied from the file'
                                if info['learnable_pos_embed'] else
                                f'pos_embed {tuple(pos)} filled with '
                                "MMAction2's sine-cosine table"))
    checkpoint.clear()
    checkpoint['state_dict'] = state
    checkpoint['meta'] = {**(meta if isinstance(meta, Mapping) else {}),
                          f'{"swin" if swin else "videomae"}_conversion': info}
    where = (f'under {info["wrapper"]!r}' if info['wrapper'] else
             'at the top level')
    print_log(
        f'Converted an original {"Video Swin" if swin else "VideoMAE"} '
        f'checkpoint in memory ({source}): {info["tensors"]} tensors {where}, '
        f'{info["num_classes"]} classes, {detail}.', logger='current')


def load_recognizer_weights(model: nn.Module, checkpoint: str,
                            allow_partial: bool = False) -> Dict:
    """Load a checkpoint file or URL into a recognizer as ``tools/test.py``
    does (mmengine's loaders, :func:`prepare_checkpoint`), or refuse it with
    a ``CheckpointError``; return the loaded (possibly converted) file.

    Args:
        model (nn.Module): The built recognizer.
        checkpoint (str): Path or URL.
        allow_partial (bool): Let model keys be missing. Defaults to False.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if allow_partial and hasattr(model, 'allow_partial_load'):
        model.allow_partial_load = True  # an STARecognizer3D checks too
    # mmengine would print its backend line outside any run's logger
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu',
                                            logger='silent')
    prepare_checkpoint(model, ckpt, checkpoint, allow_partial)
    model.load_state_dict(
        strip_module_prefix(ckpt.get('state_dict', ckpt), checkpoint),
        strict=not allow_partial)
    local = local_checkpoint_file(checkpoint)
    record = (f' (file {local}, sha256 {file_sha256(local)[:12]})'
              if local else '')
    print_log(f'Loaded {checkpoint}{record}', logger='current')
    return ckpt
