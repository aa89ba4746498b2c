"""CheckpointKeysHook: a checkpoint must fill the model it is loaded into."""
from typing import Dict, List

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log

from .hooks import unwrap


@HOOKS.register_module()
class CheckpointKeysHook(Hook):
    """Fail loudly when a checkpoint does not fit the model's backbone.

    MMAction2's ``tools/test.py`` loads with ``strict=False``, so a checkpoint
    of the wrong model silently leaves random weights behind. This hook runs
    on the loaded checkpoint before it is copied into the model: it logs
    every missing or unexpected backbone key and raises if any backbone
    weight is missing.

    Args:
        prefix (str): Prefix of the backbone's keys in the recognizer.
            Defaults to ``'backbone.'``.
    """

    priority = 'LOW'

    def __init__(self, prefix: str = 'backbone.') -> None:
        self.prefix = prefix

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        # An original VideoMAE release file (SSV2 ViTs, ViT-H) is converted
        # in place: mmengine copies ``checkpoint['state_dict']`` (else the
        # dict itself) into the model after this hook, so the dict is emptied
        # and refilled with the converted state dict.
        from ..utils import (convert_videomae_state_dict,
                             describe_videomae_state, is_original_videomae)
        if is_original_videomae(checkpoint):
            info = describe_videomae_state(checkpoint)
            converted = convert_videomae_state_dict(checkpoint,
                                                    unwrap(runner.model))
            checkpoint.clear()
            checkpoint['state_dict'] = converted
            checkpoint['meta'] = dict(videomae_conversion=info)
            where = (f'under {info["wrapper"]!r}'
                     if info['wrapper'] else 'at the top level')
            pos = tuple(converted[self.prefix + 'pos_embed'].shape) \
                if self.prefix + 'pos_embed' in converted else None
            print_log(
                'Converted an original VideoMAE checkpoint in memory '
                f'({runner.cfg.get("load_from")}): {info["tensors"]} tensors '
                f'{where}, ViT embed_dims={info["embed_dims"]} x '
                f'{info["depth"]} blocks, {info["num_classes"]} classes, '
                f'layer scale {"yes" if info["layer_scale"] else "no"}; '
                + ('position table copied from the file.'
                   if info['learnable_pos_embed'] else
                   f'pos_embed {pos} filled with MMAction2\'s sine-cosine '
                   'table.'),
                logger='current')
        state = checkpoint.get('state_dict', checkpoint)
        have = {k[len('module.'):] if k.startswith('module.') else k
                for k in state}
        want = {
            k
            for k in unwrap(runner.model).state_dict()
            if k.startswith(self.prefix)
        }
        got = {k for k in have if k.startswith(self.prefix)}
        missing = sorted(want - got)
        unexpected = sorted(got - want)
        if unexpected:
            print_log(
                f'The checkpoint has {len(unexpected)} backbone keys the '
                f'model does not: {_short(unexpected)}',
                logger='current',
                level=30)
        if missing:
            raise ValueError(
                f'The checkpoint lacks {len(missing)} of the model\'s '
                f'{len(want)} backbone weights: {_short(missing)}. It does '
                'not fit this config; evaluating would use random weights.')



def _short(keys: List[str], n: int = 8) -> str:
    more = f' ... (+{len(keys) - n} more)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more
