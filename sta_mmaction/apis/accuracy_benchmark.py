"""Accuracy against GFLOPs of every token-reduction strategy, on this machine.

The logic of ``tools/accuracy_benchmark.py``: generate (or reuse) the
labelled motion set of :mod:`sta_mmaction.datasets.synthetic_motion`, train
the small STAViT of ``configs/synthetic/sta_vit_tiny_synthetic_motion.py`` at
``r=0`` with mmengine's ``Runner`` (a checkpoint trained with the same
settings is reused), then test it for every strategy and drop number with
the standard test pipeline, and write ``results.json``, ``results.md`` and
``accuracy_vs_gflops.png``.
"""
import argparse
import copy
import hashlib
import json
import os.path as osp
import platform
import textwrap
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.runner import Runner
from mmengine.utils import mkdir_or_exist

from ..core import max_drop_number
from ..datasets.synthetic_motion import (ann_file_name, make_synthetic_motion,
                                         preview)
from ..engine import add_test_hooks


class _KeepMetrics(Hook):
    """Remember the metrics of the last validation epoch."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: Dict = {}

    def after_val_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        self.metrics = dict(metrics or {})


def set_epochs(cfg: Config, epochs: int) -> None:
    """Set the epochs and bend the schedule and checkpointing to them."""
    if epochs < 1:
        raise ValueError(f'--epochs={epochs} must be >= 1.')
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = min(cfg.train_cfg.get('val_interval', 1),
                                     epochs)
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
    cfg.default_hooks.checkpoint.interval = epochs


def prepare_config(args: argparse.Namespace, data_root: str) -> Config:
    """The training config, pointed at the generated set in ``data_root``."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.epochs is not None:
        set_epochs(cfg, args.epochs)
    cfg.model.cls_head.num_classes = args.num_classes
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        dataset.ann_file = osp.join(data_root, ann_file_name(split))
        dataset.data_prefix = dict(video=osp.join(data_root, split))
    backbone = cfg.model.backbone
    backbone.drop_number = 0
    backbone.strategy = 'sta'
    cfg.work_dir = osp.join(args.work_dir, 'train')
    return cfg


def _fingerprint(cfg: Config, data_root: str) -> str:
    with open(osp.join(data_root, 'meta.json')) as f:
        meta = f.read()
    return hashlib.sha256((cfg.pretty_text + meta).encode()).hexdigest()[:16]


def train(cfg: Config, data_root: str, retrain: bool,
          logger: MMLogger) -> Dict:
    """Train at ``r=0`` (or reuse a checkpoint of the same settings)."""
    meta_file = osp.join(cfg.work_dir, 'train_meta.json')
    stamp = _fingerprint(cfg, data_root)
    if not retrain and osp.isfile(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
        if meta.get('fingerprint') == stamp and osp.isfile(
                meta.get('checkpoint', '')):
            print_log(
                f'Reusing the checkpoint {meta["checkpoint"]} (trained with '
                'the same settings; --retrain trains again)',
                logger=logger)
            return meta
    cfg = copy.deepcopy(cfg)
    cfg.experiment_name = 'train'  # the Runner appends a timestamp
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
        train_clips=len(runner.train_dataloader.dataset),
        train_seconds=round(seconds, 1),
        torch_threads=torch.get_num_threads(),
        val=keep.metrics)
    with open(meta_file, 'w') as f:
        json.dump(meta, f, indent=1)
    print_log(
        f'Trained {epochs} epochs in {seconds / 60:.1f} min; validation '
        f'top-1 {keep.metrics.get("acc/top1", float("nan")):.4f}',
        logger=logger)
    return meta


def evaluate(cfg: Config, checkpoint: str, work_dir: str, strategy: str,
             r: int, seed: int) -> Dict:
    """``Runner.test`` of one strategy and drop number, with its GFLOPs."""
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.update(drop_number=r, strategy=strategy, seed=seed)
    cfg.load_from = checkpoint
    name = f'{strategy}_r{r}' + (f'_seed{seed}' if strategy == 'random' else
                                 '')
    cfg.work_dir = osp.join(work_dir, 'sweep', name)
    cfg.experiment_name = name  # the Runner appends a timestamp
    cfg.log_level = 'WARNING'  # one summary line per run instead
    add_test_hooks(cfg)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator'):
        cfg.pop(key, None)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    metrics = runner.test()
    return dict(
        strategy=strategy,
        r=r,
        seed=seed if strategy == 'random' else None,
        top1=float(metrics['acc/top1']),
        mean1=float(metrics['acc/mean1']),
        gflops=float(metrics['gflops_per_view']),
        tokens=list(metrics['tokens']),
        test_seconds=round(time.perf_counter() - start, 1))


def summarise(runs: List[Dict], strategies: Sequence[str],
              drop_numbers: Sequence[int]) -> List[Dict]:
    """One row per (strategy, r); seeds of 'random' averaged, r=0 shared."""
    rows = []
    base = [x for x in runs if x['r'] == 0]
    for strategy in strategies:
        for r in drop_numbers:
            hits = base if r == 0 else [
                x for x in runs if x['strategy'] == strategy and x['r'] == r
            ]
            if not hits:
                continue
            top1 = torch.tensor([x['top1'] for x in hits], dtype=torch.float64)
            rows.append(
                dict(
                    strategy=strategy,
                    r=r,
                    tokens=hits[0]['tokens'],
                    gflops=hits[0]['gflops'],
                    top1=float(top1.mean()),
                    top1_std=float(top1.std()) if len(hits) > 1 else 0.0,
                    mean1=sum(x['mean1'] for x in hits) / len(hits),
                    runs=len(hits)))
    return rows


def winners(rows: List[Dict], drop_numbers: Sequence[int]) -> Dict[int, List]:
    """Strategies with the best top-1 at each ``r > 0`` (ties kept)."""
    out = {}
    for r in drop_numbers:
        at = [x for x in rows if x['r'] == r]
        if r == 0 or not at:
            continue
        best = max(x['top1'] for x in at)
        out[r] = [x['strategy'] for x in at if x['top1'] >= best - 1e-9]
    return out


def markdown(rows: List[Dict], strategies: Sequence[str],
             drop_numbers: Sequence[int], info: Dict) -> str:
    """The results as Markdown: a wide top-1 table and the long table."""
    best = winners(rows, drop_numbers)
    cell = {(x['strategy'], x['r']): x for x in rows}
    lines = [
        '# Accuracy against GFLOPs per view: token-reduction strategies', '',
        f'{info["model"]}; {info["data"]}; {info["view"]}. '
        f'Trained at r=0 in {info["train_minutes"]:.1f} min '
        f'({info["hardware"]}); validation top-1 '
        f'{100 * info["val_top1"]:.1f}%. Test split: '
        f'{info["test_clips"]} clips. r=0 is the unpruned model, shared by '
        "every strategy. 'random' is the mean (± std) over seeds "
        f'{info["random_seeds"]}.', '', '## Top-1 (%) by drop number', ''
    ]
    head = ['r', 'tokens', 'GFLOPs (sta)'] + list(strategies) + ['best']
    lines += ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in drop_numbers:
        ref = cell.get((strategies[0], r))
        if ref is None:
            continue
        tops = []
        for s in strategies:
            x = cell.get((s, r))
            if x is None:
                tops.append('-')
                continue
            text = f'{100 * x["top1"]:.1f}'
            if x['runs'] > 1 and r:
                text += f' ± {100 * x["top1_std"]:.1f}'
            if r and s in best.get(r, []):
                text = f'**{text}**'
            tops.append(text)
        tokens = ' / '.join(str(t) for t in ref['tokens'][1:])
        lines.append('| ' + ' | '.join([
            str(r), tokens, f'{ref["gflops"]:.3f}', *tops, ', '.join(
                best.get(r, ['-']))
        ]) + ' |')
    lines += [
        '', '## Every run', '',
        '| strategy | r | tokens after each prune point | GFLOPs / view '
        '| top-1 (%) | mean class acc (%) | runs |',
        '|---|---|---|---|---|---|---|'
    ]
    for x in rows:
        lines.append(
            f'| {x["strategy"]} | {x["r"]} | '
            f'{" / ".join(str(t) for t in x["tokens"][1:])} | '
            f'{x["gflops"]:.3f} | {100 * x["top1"]:.1f} | '
            f'{100 * x["mean1"]:.1f} | {x["runs"]} |')
    return '\n'.join(lines) + '\n'


def plot(rows: List[Dict], strategies: Sequence[str], out_file: str,
         title: str) -> str:
    """Top-1 against GFLOPs per view, one curve per strategy."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    styles = dict(
        sta=('tab:red', 'o'),
        random=('tab:gray', 's'),
        temporal=('tab:blue', '^'),
        semantic=('tab:green', 'v'),
        tome=('tab:purple', 'D'))
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    for s in strategies:
        pts = sorted((x for x in rows if x['strategy'] == s),
                     key=lambda x: x['gflops'])
        if not pts:
            continue
        colour, marker = styles.get(s, (None, 'o'))
        ax.errorbar([x['gflops'] for x in pts],
                    [100 * x['top1'] for x in pts],
                    yerr=[100 * x['top1_std'] for x in pts],
                    color=colour,
                    marker=marker,
                    markersize=5,
                    linewidth=2 if s == 'sta' else 1.3,
                    capsize=3,
                    label=s)
        if s == strategies[0]:
            for x in pts:
                ax.annotate(
                    f'r={x["r"]}', (x['gflops'], 100 * x['top1']),
                    textcoords='offset points',
                    xytext=(4, -12),
                    fontsize=7,
                    color='dimgray')
    ax.set_xlabel('GFLOPs per view (backbone, fvcore, 1 multiply-add = '
                  '1 FLOP)')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_title(textwrap.fill(title, 90), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(title='strategy')
    fig.tight_layout()
    fig.savefig(out_file)
    plt.close(fig)
    return out_file


def run_accuracy_benchmark(args: argparse.Namespace) -> Dict:
    """Data, training and the sweep; returns what ``results.json`` holds.

    Args:
        args (argparse.Namespace): The options of
            ``tools/accuracy_benchmark.py`` (see its ``--help``).
    """
    mkdir_or_exist(args.work_dir)
    # The tool's own logger: every Runner makes itself the 'current' one,
    # and the test runners log at WARNING only.
    logger = MMLogger.get_instance(
        f'accuracy_benchmark_{time.strftime("%Y%m%d_%H%M%S")}',
        log_file=osp.join(args.work_dir, 'benchmark.log'),
        log_level='INFO')
    n_train, n_val, n_test = args.clips
    data_root = osp.join(args.work_dir, 'data')
    cfg = prepare_config(args, data_root)
    backbone = cfg.model.backbone
    side = backbone.img_size // backbone.patch_size
    slices = backbone.num_frames // backbone.get('tubelet_size', 2)
    largest = max_drop_number(side * side, slices)
    bad = [r for r in args.drop_numbers if not 0 <= r <= largest]
    if bad:
        raise ValueError(f'--drop-numbers {bad}: every r must be between 0 '
                         f'and {largest} for {slices} slices of {side}x{side} '
                         'tokens.')
    drop_numbers = sorted(set(args.drop_numbers) | {0})

    make_synthetic_motion(
        data_root,
        dict(train=n_train, val=n_val, test=n_test),
        num_classes=args.num_classes,
        force=args.regenerate)
    preview(data_root, osp.join(args.work_dir, 'data_preview.png'))
    meta = train(cfg, data_root, args.retrain, logger)

    runs = []
    todo = [('sta', 0, 0)]
    for r in drop_numbers[1:]:
        for s in args.strategies:
            seeds = args.random_seeds if s == 'random' else [0]
            todo += [(s, r, seed) for seed in seeds]
    start = time.perf_counter()
    for i, (s, r, seed) in enumerate(todo):
        run = evaluate(cfg, meta['checkpoint'], args.work_dir, s, r, seed)
        runs.append(run)
        print_log(
            f'[{i + 1}/{len(todo)}] {s:<8} r={r:<3} seed={seed} '
            f'tokens={run["tokens"]} {run["gflops"]:.3f} GFLOPs/view '
            f'top-1 {100 * run["top1"]:.1f}% ({run["test_seconds"]:.0f} s)',
            logger=logger)
    sweep_seconds = time.perf_counter() - start

    strategies = list(dict.fromkeys(args.strategies))
    rows = summarise(runs, strategies, drop_numbers)
    info = dict(
        model=(f'STAViT {backbone.depth} blocks x {backbone.embed_dims} '
               f'channels, {backbone.num_heads} heads, trained from scratch '
               f'for {meta["epochs"]} epochs'),
        data=(f'generated motion set, {args.num_classes} classes, '
              f'{n_train}/{n_val}/{n_test} clips per class '
              '(train/val/test)'),
        view=(f'one view = 1 clip x {backbone.num_frames} frames x '
              f'{backbone.img_size}x{backbone.img_size}, centre crop'),
        hardware=(f'{platform.machine()} CPU, {meta["torch_threads"]} torch '
                  'threads'),
        train_minutes=meta['train_seconds'] / 60,
        val_top1=meta['val'].get('acc/top1', float('nan')),
        test_clips=n_test * args.num_classes,
        random_seeds=list(args.random_seeds),
        sweep_minutes=round(sweep_seconds / 60, 1))
    result = dict(
        info=info,
        train=meta,
        rows=rows,
        runs=runs,
        winners={str(k): v
                 for k, v in winners(rows, drop_numbers).items()})
    json_file = osp.join(args.work_dir, 'results.json')
    with open(json_file, 'w') as f:
        json.dump(result, f, indent=1)
    md_file = osp.join(args.work_dir, 'results.md')
    with open(md_file, 'w') as f:
        f.write(markdown(rows, strategies, drop_numbers, info))
    png_file = plot(
        rows, strategies, osp.join(args.work_dir, 'accuracy_vs_gflops.png'),
        f'{info["model"]}; {info["data"]}; {info["view"]}; '
        f'test split of {info["test_clips"]} clips')
    print_log(
        f'Sweep of {len(todo)} test runs took {sweep_seconds / 60:.1f} min. '
        f'Wrote {md_file}, {json_file} and {png_file}',
        logger=logger)
    return result
