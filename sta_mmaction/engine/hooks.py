"""Hooks that make a test run report what was evaluated and with what."""
from typing import Dict, List, Optional, Sequence

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..analysis import backbone_report, view_shape


#: Hooks every STA test run carries (``tools/test.py``, the demo).
TEST_HOOKS = ('STAReportHook', 'CheckpointKeysHook')


def add_test_hooks(cfg) -> None:
    """Append :data:`TEST_HOOKS` to ``cfg.custom_hooks`` unless present."""
    hooks = list(cfg.get('custom_hooks', []))
    have = {h.get('type') for h in hooks}
    hooks += [dict(type=name) for name in TEST_HOOKS if name not in have]
    cfg.custom_hooks = hooks


def unwrap(model):
    """The model inside a distributed (or other) wrapper."""
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class STAReportHook(Hook):
    """Report the evaluated backbone's GFLOPs per view and kept tokens.

    The report is computed once, after the checkpoint is loaded, with fvcore
    on one view whose shape comes from the test pipeline. It is logged at the
    start of the test and added to the test metrics, so it lands beside the
    accuracy in the work dir's JSON log: ``gflops_per_view``, ``params_m`` and
    ``tokens`` (the token count before the first prune point and after each).

    Args:
        shape (Sequence[int], optional): (1, C, T, H, W) of one view.
            Defaults to None, read from the config.
    """

    priority = 'NORMAL'

    def __init__(self, shape: Optional[Sequence[int]] = None) -> None:
        self.shape = tuple(shape) if shape is not None else None
        self.report: Optional[Dict] = None

    def before_test(self, runner) -> None:
        if not is_main_process():
            return
        backbone = unwrap(runner.model).backbone
        shape = self.shape or view_shape(runner.cfg)
        self.report = backbone_report(backbone, shape)
        print_log(
            f'{type(backbone).__name__} on one {tuple(shape)} view: '
            f'{self.report["gflops"]:.2f} GFLOPs, '
            f'{self.report["params_m"]:.2f} M params, tokens per prune point '
            f'{self.report["tokens"] or "n/a (no pruning)"}',
            logger='current')

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        if self.report is None:
            return
        extra = dict(
            gflops_per_view=round(self.report['gflops'], 3),
            params_m=round(self.report['params_m'], 3))
        for key, value in extra.items():
            runner.message_hub.update_scalar(f'test/{key}', value)
        runner.message_hub.update_info('test/tokens', self.report['tokens'])
        if metrics is not None:
            metrics.update(extra, tokens=self.report['tokens'])


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
