"""The accuracy benchmark's training stages, each on mmengine's Runner.

A stage is a config trained with ``Runner.train``: VideoMAE-style
pre-training, fine-tuning (or training from scratch) at ``r=0``, and the
fine-tuning controls (STA or random at ``r > 0``, or ``r=0``). Each one
writes ``stage_meta.json`` beside its checkpoint with a fingerprint of its
config, its data and the stage it starts from, so a rerun with the same
settings reuses it.
"""
import copy
import hashlib
import json
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.runner import Runner

from .synthetic_sets import ann_file_name
from sta_mmaction.models import unwrap

#: Encoder settings the pre-training config takes from the fine-tune one,
#: so that the pre-trained weights fit the fine-tuned model.
ENCODER_KEYS = ('img_size', 'patch_size', 'embed_dims', 'depth', 'num_heads',
                'mlp_ratio', 'qkv_bias', 'num_frames', 'tubelet_size',
                'norm_cfg')


class _KeepMetrics(Hook):
    """Remember the last validation metrics and each epoch's mean loss."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: Dict = {}
        self.epoch_losses: list = []
        self._losses: list = []

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        if outputs and 'loss' in outputs:
            self._losses.append(float(outputs['loss']))

    def after_train_epoch(self, runner) -> None:
        if self._losses:
            self.epoch_losses.append(sum(self._losses) / len(self._losses))
        self._losses = []

    def after_val_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        self.metrics = dict(metrics or {})


def set_epochs(cfg: Config, epochs: int, what: str = '--epochs') -> None:
    """Set the epochs and bend the schedule and checkpointing to them.

    Args:
        cfg (Config): A config with an ``EpochBasedTrainLoop``.
        epochs (int): Training epochs.
        what (str): The option, for the message. Defaults to ``'--epochs'``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f'{what}={epochs!r} must be an int >= 1.')
    cfg.train_cfg.max_epochs = epochs
    if 'val_interval' in cfg.train_cfg:
        cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval, epochs)
    schedulers = []
    for sched in cfg.get('param_scheduler', []):
        sched = copy.deepcopy(sched)
        if sched.get('type') == 'CosineAnnealingLR':
            if epochs <= sched.get('begin', 0):
                continue  # the warm-up takes the whole run
            sched['end'] = epochs
            sched['T_max'] = epochs - sched.get('begin', 0)
        schedulers.append(sched)
    cfg.param_scheduler = schedulers
    if 'checkpoint' in cfg.get('default_hooks', {}):
        cfg.default_hooks.checkpoint.interval = epochs


def point_at_data(cfg: Config, data_root: Union[str, Sequence[str]],
                  splits: Sequence[str] = ('train', 'val', 'test')) -> None:
    """Point the config's dataloaders of ``splits`` at generated sets.

    Several roots (sets with the same classes) are joined with mmengine's
    ``ConcatDataset``.
    """
    roots = [data_root] if isinstance(data_root, str) else list(data_root)
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        base = loader.dataset
        if base.get('type') == 'ConcatDataset':
            base = base.datasets[0]
        parts = [
            dict(
                copy.deepcopy(base),
                ann_file=osp.join(root, ann_file_name(split)),
                data_prefix=dict(video=osp.join(root, split)))
            for root in roots
        ]
        loader.dataset = parts[0] if len(parts) == 1 else dict(
            type='ConcatDataset', datasets=parts)


def match_encoder(pre_cfg: Config, cfg: Config) -> None:
    """Give the pre-training config's encoder the fine-tune backbone's shape.

    Raises:
        ValueError: If the pre-training config has no ``model.backbone``.
    """
    encoder = pre_cfg.get('model', {}).get('backbone')
    if encoder is None:
        raise ValueError('the pre-training config has no model.backbone '
                         '(the encoder whose backbone.* weights the '
                         'fine-tune config loads).')
    for key in ENCODER_KEYS:
        if key in cfg.model.backbone:
            encoder[key] = copy.deepcopy(cfg.model.backbone[key])


def fingerprint(cfg: Config, data_root: Union[str, Sequence[str]],
                upstream: str = '') -> str:
    """Hash of a stage's config, its data's ``meta.json`` and its parent."""
    roots = [data_root] if isinstance(data_root, str) else list(data_root)
    meta = ''
    for root in roots:
        with open(osp.join(root, 'meta.json')) as f:
            meta += f.read()
    # sorted JSON, not pretty_text: yapf took seconds per call here
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str) + meta + \
        upstream
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_stage(cfg: Config,
                data_root: Union[str, Sequence[str]],
                logger: MMLogger,
                retrain: bool = False,
                upstream: str = '') -> Dict:
    """``Runner.train`` of ``cfg``, or the stage a same-settings run left.

    Args:
        cfg (Config): The stage's config; its ``work_dir`` holds the stage.
        data_root (str or Sequence[str]): The generated sets (their
            ``meta.json`` are hashed).
        logger (MMLogger): The benchmark's logger.
        retrain (bool): Train even if a matching stage exists. Defaults to
            False.
        upstream (str): Fingerprint of the stage this one starts from.
            Defaults to '' (none).

    Returns:
        dict: ``fingerprint``, ``checkpoint``, ``epochs``, ``iters``,
        ``train_clips``, ``train_seconds``, ``torch_threads``, ``loss``
        (mean training loss of the first and of the last epoch), ``val``
        (the last validation metrics, if the config validates) and ``reused``
        (whether a previous run left the stage).
    """
    meta_file = osp.join(cfg.work_dir, 'stage_meta.json')
    stamp = fingerprint(cfg, data_root, upstream)
    if not retrain and osp.isfile(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
        if meta.get('fingerprint') == stamp and osp.isfile(
                meta.get('checkpoint', '')):
            print_log(
                f'Reusing the checkpoint {meta["checkpoint"]} (trained with '
                'the same settings; --retrain trains again)',
                logger=logger)
            return dict(meta, reused=True)
    cfg = copy.deepcopy(cfg)
    cfg.experiment_name = osp.basename(cfg.work_dir)  # the Runner adds a stamp
    runner = Runner.from_cfg(cfg)
    keep = _KeepMetrics()
    runner.register_hook(keep)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    epochs = cfg.train_cfg.max_epochs
    meta = dict(
        fingerprint=stamp,
        checkpoint=osp.join(cfg.work_dir, f'epoch_{epochs}.pth'),
        epochs=epochs,
        iters=runner.iter,
        train_clips=len(runner.train_dataloader.dataset),
        train_seconds=round(seconds, 1),
        torch_threads=torch.get_num_threads(),
        loss=[round(keep.epoch_losses[i], 4) for i in (0, -1)]
        if keep.epoch_losses else [],
        val=keep.metrics)
    with open(meta_file, 'w') as f:
        json.dump(meta, f, indent=1)
    top1 = keep.metrics.get('acc/top1')
    print_log(
        f'{cfg.work_dir}: {epochs} epochs ({runner.iter} steps) in '
        f'{seconds / 60:.1f} min' + (
            '' if not meta['loss'] else
            f'; mean loss {meta["loss"][0]} (epoch 1) -> {meta["loss"][1]} '
            f'(epoch {epochs})') +
        ('' if top1 is None else f'; validation top-1 {100 * top1:.1f}%'),
        logger=logger)
    return dict(meta, reused=False)


def _loaded_runner(cfg: Config, checkpoint: str, work_dir: str) -> Runner:
    """A quiet Runner of ``cfg`` with ``checkpoint`` loaded, for measuring.

    Its training dataloader runs in the main process; nothing is trained
    or saved.
    """
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    cfg.log_level = 'WARNING'
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    return runner


def pretrain_reference(cfg: Config,
                       checkpoint: str,
                       work_dir: str,
                       batches: int = 8,
                       seed: int = 0) -> Dict:
    """The pre-trained model's masked-tube loss beside two references.

    On ``batches`` batches of the pre-training dataloader, with tube masks
    drawn from a generator seeded with ``seed``, the same for the model and
    the references: see ``VideoMAEPretrainer.reference_losses``. A loss
    near ``visible_mean`` says pre-training learnt little beyond each
    clip's colour.

    Args:
        cfg (Config): The pre-training config (its ``load_from`` unused).
        checkpoint (str): The pre-trained weights.
        work_dir (str): The runner's work dir.
        batches (int): Batches to average over. Defaults to 8.
        seed (int): Seed of the masks. Defaults to 0.

    Returns:
        dict: ``model``, ``zero``, ``visible_mean`` (clip-weighted means)
        and ``clips``.
    """
    runner = _loaded_runner(cfg, checkpoint, work_dir)
    model = unwrap(runner.model).eval()
    gen = torch.Generator().manual_seed(seed)
    sums = dict(model=0., zero=0., visible_mean=0.)
    clips = 0
    loader = runner.build_dataloader(runner.cfg.train_dataloader)
    for i, batch in enumerate(loader):
        if i == batches:
            break
        inputs = model.as_clips(
            model.data_preprocessor(batch, False)['inputs'])
        mask = model.draw_mask(inputs.shape[0], gen)  # (B, N)
        losses = model.reference_losses(inputs, mask)
        for key in sums:
            sums[key] += losses[key] * inputs.shape[0]
        clips += inputs.shape[0]
    out = {k: round(v / clips, 4) for k, v in sums.items()}
    out['clips'] = clips
    return out
