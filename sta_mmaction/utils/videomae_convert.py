"""Read checkpoints in the original VideoMAE release format.

MMAction2 republishes VideoMAE weights only for Kinetics-400 ViT-B and ViT-L.
The other rows (SSV2 ViT-S/B/L, ViT-H on Kinetics-400) exist only as files
written by VideoMAE's own fine-tuning code. Their layout:

* the state dict sits under ``'model'`` or ``'module'`` (DeepSpeed), or is the
  file itself, and its keys may carry a leading ``'module.'``;
* the keys are those of VideoMAE's ``modeling_finetune.VisionTransformer``
  without a ``backbone.`` prefix, and three names are spelled differently::

      patch_embed.proj.*      -> backbone.patch_embed.projection.*
      blocks.i.mlp.fc1.*      -> backbone.blocks.i.mlp.layers.0.0.*
      blocks.i.mlp.fc2.*      -> backbone.blocks.i.mlp.layers.1.*
      blocks.i.{norm1,norm2,attn.*,gamma_1,gamma_2}, fc_norm.*, norm.*
                              -> backbone.<same name>
      head.{weight,bias}      -> cls_head.fc_cls.{weight,bias}

* the fixed sine-cosine position table is not stored (VideoMAE keeps it as a
  plain attribute); MMAction2 keeps it as the ``pos_embed`` buffer, so it is
  filled here with MMAction2's ``get_sinusoid_encoding`` for the target
  model's token count. A learnable table (``pos_embed`` in the file) is
  copied instead;
* DeepSpeed files hold fp16 weights: they are kept as stored, and
  ``load_state_dict`` casts them to the model's dtype.

The conversion is checked against the model it is meant for, so a file of the
wrong size, dataset or layout is refused with the offending keys named rather
than half-loaded. In particular a classifier whose class count differs from
the config's ``cls_head.num_classes`` is an error: a head fine-tuned on
another label set would give meaningless accuracy, so pick the config of the
dataset the checkpoint was fine-tuned on.

Only plain functions live here;
``tools/model_converters/convert_videomae_checkpoint.py``
writes converted files and ``CheckpointKeysHook`` converts in memory.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from torch import Tensor, nn

from .checkpoint import CheckpointError
from .checkpoint import short_keys as _short

#: Where original files keep their state dict, in the order they are tried
#: (VideoMAE's own loader tries ``model`` then ``module``).
WRAPPER_KEYS = ('model', 'module', 'state_dict')

#: The key that identifies the original layout.
_MARKER = 'patch_embed.proj.weight'

_B = 'backbone.'
_HEAD = 'cls_head.fc_cls.'

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


def _strip_module(state: Mapping) -> Dict[str, Any]:
    """Drop a ``module.`` prefix that every key carries (DDP saves)."""
    keys = [k for k in state if isinstance(k, str)]
    if keys and all(k.startswith('module.') for k in keys):
        return {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


def _looks_original(state: Any) -> bool:
    return isinstance(state, Mapping) and _MARKER in _strip_module(state)


def find_videomae_state(
        checkpoint: Any) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """The original-format state dict inside a loaded file, and where it was.

    Args:
        checkpoint: What ``torch.load`` returned.

    Returns:
        tuple: The state dict with any ``module.`` prefix removed (or None if
        the file is not in the original layout) and the wrapper key it sat
        under (None when the file is the state dict itself).
    """
    if not isinstance(checkpoint, Mapping):
        return None, None
    for key in WRAPPER_KEYS:
        if _looks_original(checkpoint.get(key)):
            return _strip_module(checkpoint[key]), key
    if _looks_original(checkpoint):
        return _strip_module(checkpoint), None
    return None, None


def is_original_videomae(checkpoint: Any) -> bool:
    """Whether a loaded file holds an original-format VideoMAE classifier.

    MMAction2 checkpoints (``backbone.patch_embed.projection.weight``) and
    VideoMAE pre-training checkpoints (``encoder.patch_embed.proj.weight``)
    are not.
    """
    return find_videomae_state(checkpoint)[0] is not None


def describe_videomae_state(checkpoint: Any) -> Dict[str, Any]:
    """What an original-format file holds, for logs and the converted meta.

    Returns:
        dict: ``wrapper`` (key the state sat under, or None), ``tensors``,
        ``embed_dims``, ``depth``, ``num_classes`` (None without a head),
        ``layer_scale`` (gamma_1/gamma_2 present) and ``learnable_pos_embed``.

    Raises:
        CheckpointError: The file is not in the original layout.
    """
    state, wrapper = _require_state(checkpoint)
    head = state.get('head.weight')
    marker = state[_MARKER]
    return dict(
        wrapper=wrapper,
        tensors=sum(isinstance(v, Tensor) for v in state.values()),
        embed_dims=int(marker.shape[0])
        if isinstance(marker, Tensor) else None,
        depth=_depth(state),
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
    keys = [str(k) for k in checkpoint]
    hint = ''
    if any(
            k.endswith('encoder.patch_embed.proj.weight')
            for k in _nested(checkpoint)):
        hint = (' It looks like a VideoMAE pre-training checkpoint '
                '(encoder/decoder); STA evaluates fine-tuned classifiers, so '
                'use the fine-tuned release of the same model.')
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
    if isinstance(value, Tensor):
        return str(tuple(value.shape))
    return f'a {type(value).__name__}, not a tensor'


def convert_videomae_state_dict(checkpoint: Any,
                                target: Target) -> 'OrderedDict[str, Tensor]':
    """Convert an original VideoMAE file to a recognizer state dict.

    Args:
        checkpoint: A loaded original-format file: the state dict itself, or
            a dict holding it under ``'model'``, ``'module'`` or
            ``'state_dict'``; keys may carry a leading ``'module.'``.
        target (nn.Module | Mapping[str, Tensor]): The recognizer the result
            is for (``Recognizer3D`` with a ``VisionTransformer``/``STAViT``
            backbone and a ``TimeSformerHead``), or its state dict. Its keys
            and shapes are the contract: its ``backbone.pos_embed`` shape
            ``(1, N, C)`` sets the size of the filled position table.

    Returns:
        OrderedDict[str, Tensor]: Keys ``backbone.*`` and ``cls_head.fc_cls.*``
        in the target's order, exactly the target's keys, so
        ``load_state_dict(..., strict=True)`` succeeds. Tensors keep the
        file's dtype (``load_state_dict`` casts them).

    Raises:
        CheckpointError: The file is not in the original layout, or it does
            not fit ``target``: the message lists the missing, unexpected and
            wrongly shaped keys, and names both class counts when only the
            classifier differs.
    """
    from mmaction.models.backbones.vit_mae import get_sinusoid_encoding

    state, _ = _require_state(checkpoint)
    model = target if isinstance(target, nn.Module) else None
    want = (model.state_dict() if model is not None else dict(target))

    converted: Dict[str, Any] = {}
    origin: Dict[str, str] = {}  # MMAction2 key -> original key
    unknown = []
    for key, value in state.items():
        new = map_videomae_key(key) if isinstance(key, str) else None
        if new is None:
            unknown.append(str(key))
        else:
            converted[new] = value
            origin[new] = key

    pos = _B + 'pos_embed'
    if pos in want and pos not in converted:
        learnable = model is not None and isinstance(
            getattr(getattr(model, 'backbone', None), 'pos_embed', None),
            nn.Parameter)
        if learnable:
            raise CheckpointError(
                'The model learns its position embeddings '
                '(use_learnable_pos_emb=True) but the file stores none: the '
                'checkpoint was fine-tuned with the fixed sine-cosine table. '
                'Set model.backbone.use_learnable_pos_emb=False.')
        _, n, c = want[pos].shape
        converted[pos] = get_sinusoid_encoding(n, c)  # (1, N, C)

    missing = [k for k in want if k not in converted]
    unexpected = unknown + [origin[k] for k in converted if k not in want]
    wrong = [
        f'{k}: file {_shape(converted[k])} vs model {tuple(want[k].shape)}'
        for k in want
        if k in converted and (not isinstance(converted[k], Tensor)
                               or converted[k].shape != want[k].shape)
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            _mismatch_message(state, converted, want, missing, unexpected,
                              wrong))
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
        shapes = _short(wrong, 5, sep='; ')
        lines.append(f'  wrong shape ({len(wrong)}): {shapes}')

    head_w = converted.get(_HEAD + 'weight')
    want_w = want.get(_HEAD + 'weight')
    if (isinstance(head_w, Tensor) and want_w is not None and head_w.dim() == 2
            and head_w.shape[1] == want_w.shape[1]
            and head_w.shape[0] != want_w.shape[0]):
        lines.append(
            f'  head: the file classifies {head_w.shape[0]} classes but the '
            f'model has {want_w.shape[0]} (cls_head.num_classes). Use the '
            'config of the dataset the checkpoint was fine-tuned on '
            '(400: Kinetics-400, 174: Something-Something V2).')
    patch = converted.get(_B + 'patch_embed.projection.weight')
    want_p = want.get(_B + 'patch_embed.projection.weight')
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
