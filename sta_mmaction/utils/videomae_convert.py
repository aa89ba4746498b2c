"""Read checkpoints in the original VideoMAE release format.

MMAction2 republishes only K400 ViT-B/L; the other rows (SSV2 ViT-S/B/L, K400
ViT-H) exist only as files of VideoMAE's own fine-tuning code. Their state
dict sits under ``'model'`` or ``'module'`` (DeepSpeed, fp16: cast on load)
or is the file itself; MMAction2 puts its keys under ``backbone.`` except::

    patch_embed.proj.*  -> backbone.patch_embed.projection.*
    blocks.i.mlp.fc1.*  -> backbone.blocks.i.mlp.layers.0.0.*
    blocks.i.mlp.fc2.*  -> backbone.blocks.i.mlp.layers.1.*
    head.{weight,bias}  -> cls_head.fc_cls.{weight,bias}

The fixed sine-cosine position table is not stored; MMAction2's
``pos_embed`` buffer is filled for the target's token count. The result is
checked against the target model, so a file of the wrong size, dataset
(class count) or layout is refused with the keys named, never half-loaded.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from torch import Tensor, nn

from .checkpoint import CheckpointError, _find_state, _strip_module
from .checkpoint import short_keys as _short
from .swin_convert import is_original_swin

#: Where files keep their state dict, tried in order (as VideoMAE does).
WRAPPER_KEYS = ('model', 'module', 'state_dict')
_MARKER = 'patch_embed.proj.weight'  # identifies the original layout

_B, _HEAD = 'backbone.', 'cls_head.fc_cls.'

# (original key pattern, MMAction2 recognizer key template)
_RULES = [
    (r'patch_embed\.proj\.(weight|bias)', _B + r'patch_embed.projection.\1'),
    (r'blocks\.(\d+)\.mlp\.fc1\.(weight|bias)',
     _B + r'blocks.\1.mlp.layers.0.0.\2'),
    (r'blocks\.(\d+)\.mlp\.fc2\.(weight|bias)',
     _B + r'blocks.\1.mlp.layers.1.\2'),
    (r'blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)', _B + r'blocks.\1.\2.\3'),
    (r'blocks\.(\d+)\.attn\.(q_bias|v_bias|qkv\.weight|proj\.weight|'
     r'proj\.bias)', _B + r'blocks.\1.attn.\2'),
    (r'blocks\.(\d+)\.(gamma_1|gamma_2)', _B + r'blocks.\1.\2'),
    (r'(fc_norm|norm)\.(weight|bias)', _B + r'\1.\2'),
    (r'pos_embed', _B + 'pos_embed'),
    (r'head\.(weight|bias)', _HEAD + r'\1'),
]
_RULES = [(re.compile(p + '$'), r) for p, r in _RULES]

Target = Union[nn.Module, Mapping[str, Tensor]]


def _looks_original(state: Any) -> bool:
    return isinstance(state, Mapping) and _MARKER in _strip_module(state)


def find_videomae_state(
        checkpoint: Any) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """The original-format state dict in a loaded file (``module.``
    stripped; None if there is none) and its wrapper key (None at the top
    level)."""
    return _find_state(checkpoint, WRAPPER_KEYS, _looks_original)


def is_original_videomae(checkpoint: Any) -> bool:
    """Whether a loaded file holds an original-format VideoMAE classifier
    (MMAction2 and VideoMAE pre-training checkpoints do not)."""
    return find_videomae_state(checkpoint)[0] is not None


def describe_videomae_state(checkpoint: Any) -> Dict[str, Any]:
    """What an original-format file holds, for logs and the converted meta;
    ``CheckpointError`` if the file is not in the original layout.

    Returns:
        dict: ``wrapper`` (key the state sat under, or None), ``tensors``,
        ``embed_dims``, ``depth``, ``num_classes`` (None without a head),
        ``layer_scale`` (gamma_1/gamma_2 present) and ``learnable_pos_embed``.
    """
    state, wrapper = _require_state(checkpoint)
    head, marker = state.get('head.weight'), state[_MARKER]
    return dict(
        wrapper=wrapper,
        tensors=sum(isinstance(v, Tensor) for v in state.values()),
        embed_dims=(int(marker.shape[0]) if isinstance(marker, Tensor)
                    else None), depth=_depth(state),
        num_classes=int(head.shape[0]) if isinstance(head, Tensor) else None,
        layer_scale=any(str(k).endswith('.gamma_1') for k in state),
        learnable_pos_embed='pos_embed' in state)


def _depth(state: Mapping, prefix: str = '') -> int:
    """Number of transformer blocks among ``{prefix}blocks.<i>.*`` keys."""
    pattern = re.compile(re.escape(prefix) + r'blocks\.(\d+)\.')
    found = (pattern.match(k) for k in state if isinstance(k, str))
    return len({m.group(1) for m in found if m})


def _require_state(checkpoint: Any) -> Tuple[Dict[str, Any], Optional[str]]:
    state, wrapper = find_videomae_state(checkpoint)
    if state is not None:
        return state, wrapper
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            'Not an original VideoMAE checkpoint: expected a dict holding '
            f'{_MARKER!r}, got a {type(checkpoint).__name__}.')
    keys, hint = [str(k) for k in checkpoint], ''
    if any(k.endswith('encoder.' + _MARKER) for k in _nested(checkpoint)):
        hint = (' It looks like a VideoMAE pre-training checkpoint '
                '(encoder/decoder); STA evaluates fine-tuned classifiers, so '
                'use the fine-tuned release of the same model.')
    elif is_original_swin(checkpoint):
        hint = (' It is an original Video Swin checkpoint: convert it with '
                'tools/model_converters/convert_swin_checkpoint.py (or give '
                'it to tools/test.py with a Swin config).')
    elif any(k.startswith(_B) for k in _nested(checkpoint)):
        hint = (' It looks like an MMAction2 checkpoint already: load it '
                'directly, without conversion.')
    raise CheckpointError(
        f'Not an original VideoMAE checkpoint: no {_MARKER!r} at the top '
        f'level or under {", ".join(map(repr, WRAPPER_KEYS))}; its top-level '
        f'keys are {_short(keys)}.{hint}')


def _nested(checkpoint: Mapping) -> List[str]:
    """Keys at the top level and one wrapper down."""
    keys = [k for k in checkpoint if isinstance(k, str)]
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            keys += [k for k in checkpoint[key] if isinstance(k, str)]
    return [k[len('module.'):] if k.startswith('module.') else k for k in keys]


def map_videomae_key(key: str) -> Optional[str]:
    """The MMAction2 recognizer key of an original key, or None if unknown."""
    for pattern, template in _RULES:
        if pattern.match(key):
            return pattern.sub(template, key)
    return None


def _shape(value: Any) -> str:
    return (str(tuple(value.shape)) if isinstance(value, Tensor) else
            f'a {type(value).__name__}, not a tensor')


def convert_videomae_state_dict(checkpoint: Any,
                                target: Target) -> 'OrderedDict[str, Tensor]':
    """Convert an original VideoMAE file to a recognizer state dict.

    Args:
        checkpoint: A loaded original-format file (see :data:`WRAPPER_KEYS`).
        target (nn.Module | Mapping[str, Tensor]): The recognizer (ViT
            backbone, ``TimeSformerHead``) or its state dict: its keys and
            shapes are the contract; ``backbone.pos_embed`` ``(1, N, C)``
            sets the size of the filled position table.

    Returns:
        OrderedDict[str, Tensor]: Exactly the target's keys, in its order, so
        a strict ``load_state_dict`` succeeds; tensors keep the file's dtype.
        ``CheckpointError`` names the keys if the file does not fit.
    """
    from mmaction.models.backbones.vit_mae import get_sinusoid_encoding

    state, _ = _require_state(checkpoint)
    model = target if isinstance(target, nn.Module) else None
    want = model.state_dict() if model is not None else dict(target)
    converted, origin, unknown = {}, {}, []  # origin: new key -> original
    for key, value in state.items():
        new = map_videomae_key(key) if isinstance(key, str) else None
        if new is None:
            unknown.append(str(key))
        else:
            converted[new], origin[new] = value, key
    pos = _B + 'pos_embed'
    if pos in want and pos not in converted:
        if model is not None and isinstance(
                getattr(getattr(model, 'backbone', None), 'pos_embed', None),
                nn.Parameter):  # a learnable table the file lacks
            raise CheckpointError(
                'The model learns its position embeddings '
                '(use_learnable_pos_emb=True) but the file stores none: the '
                'checkpoint was fine-tuned with the fixed sine-cosine table. '
                'Set model.backbone.use_learnable_pos_emb=False.')
        _, n, c = want[pos].shape
        converted[pos] = get_sinusoid_encoding(n, c)  # (1, N, C)
    missing = [k for k in want if k not in converted]
    unexpected = unknown + [origin[k] for k in converted if k not in want]
    wrong = [f'{k}: file {_shape(converted[k])} vs model '
             f'{tuple(want[k].shape)}' for k in want if k in converted and (
                 not isinstance(converted[k], Tensor)
                 or converted[k].shape != want[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(_mismatch_message(state, converted, want,
                                                missing, unexpected, wrong))
    return OrderedDict((k, converted[k]) for k in want)


def _mismatch_message(state, converted, want, missing, unexpected,
                      wrong) -> str:
    lines = ['The original VideoMAE checkpoint does not fit the model:']
    if missing:
        lines.append(f'  missing ({len(missing)} of the model\'s {len(want)}'
                     f' keys): {_short(missing)}')
    if unexpected:
        lines.append(f'  unexpected ({len(unexpected)} keys of the file, '
                     f'original names): {_short(unexpected)}')
    if wrong:
        lines.append(f'  wrong shape ({len(wrong)}): '
                     f"{_short(wrong, 5, sep='; ')}")
    head_w, want_w = (d.get(_HEAD + 'weight') for d in (converted, want))
    if (isinstance(head_w, Tensor) and want_w is not None and head_w.dim() == 2
            and head_w.shape[1] == want_w.shape[1]
            and head_w.shape[0] != want_w.shape[0]):
        lines.append(
            f'  head: the file classifies {head_w.shape[0]} classes but the '
            f'model has {want_w.shape[0]} (cls_head.num_classes). Use the '
            'config of the dataset the checkpoint was fine-tuned on '
            '(400: Kinetics-400, 174: Something-Something V2).')
    patch, want_p = (d.get(_B + 'patch_embed.projection.weight')
                     for d in (converted, want))
    if (isinstance(patch, Tensor) and want_p is not None
            and (patch.shape[0] != want_p.shape[0]
                 or _depth(state) != _depth(want, _B))):
        lines.append(
            f'  size: the file is a ViT with embed_dims={patch.shape[0]} and '
            f'{_depth(state)} blocks, the model has embed_dims='
            f'{want_p.shape[0]} and {_depth(want, _B)} blocks: pick the '
            'config of the same ViT size (S: 384, B: 768, L: 1024, H: 1280).')
    file_gamma = any(str(k).endswith('.gamma_1') for k in state)
    model_gamma = any(k.endswith('.gamma_1') for k in want)
    if file_gamma != model_gamma:
        lines.append(
            '  layer scale: the file ' + ('has' if file_gamma else 'lacks') +
            ' gamma_1/gamma_2; set model.backbone.init_values ' +
            ('to a float > 0, e.g. 0.1 (the file overrides the value).'
             if file_gamma else 'to 0.'))
    return '\n'.join(lines)
