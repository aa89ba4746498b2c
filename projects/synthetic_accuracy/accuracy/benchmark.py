"""Token-reduction strategies at equal budgets, with evidence and intervals.

The logic of ``tools/accuracy_benchmark.py``:

1. generate the sets (:mod:`.synthetic_sets`): ``shape`` (the easy case),
   ``footage`` (evidence in 2-3 of 8 slices over real footage, skipped with
   the reason when no real clips are found) and, on request, ``motion``;
2. train the 12-block STAViT of ``configs/sta_vit12_synthetic.py`` at
   ``r=0`` once per class list, on the training clips of every set with
   those classes (``shape`` and ``footage`` share the shape classes);
3. per set, decode the test clips and a few training clips once, test the
   unpruned model, and compare strategies only where its top-1 interval
   clears a bar above chance; then sweep every strategy of the library's
   single list (:data:`sta_mmaction.core.STRATEGIES`, so new ones join by
   themselves) and the two evidence brackets at the headline budgets and
   the stress budgets: top-1 of the fixed head, a refitted linear probe
   (headline budgets), evidence kept per prune point and the pooled cosine,
   per clip (:mod:`.sweep`);
4. fine-tuning controls: from the ``r=0`` model, the same epochs and
   learning rate with STA on at r, with random at r, and at ``r=0``; each
   tested with STA and random at r and unpruned;
5. ``results.json``, ``results.md``, one ``accuracy_vs_gflops_<set>.png``
   per set and, with ``--update-readme``, the README's results section
   (:mod:`.report`).

Every stage is reused when a run with the same settings left it.
"""
import argparse
import copy
import importlib
import json
import math
import os
import os.path as osp
import platform
import shlex
import sys
import time
from typing import Dict, List, Sequence, Tuple

import torch
from mmaction.registry import MODELS as BACKBONES
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.registry import DefaultScope
from mmengine.utils import mkdir_or_exist

from sta_mmaction.analysis.speed import setup_cpu
from sta_mmaction.apis.demo import build_recognizer
from sta_mmaction.core import STRATEGIES, max_drop_number
from .evidence import BRACKETS
from .footage import footage_sources
from .intervals import mean_interval, paired_interval
from .report import (MODELS, markdown, plot, readme_section, replace_section,
                     summarise)
from .stages import (match_encoder, point_at_data, pretrain_reference,
                     set_epochs, train_stage)
from .sweep import (cached_sweep, load_split, point, point_key, sweep_split,
                    sweep_points)
from .synthetic_sets import (MASKED_KINDS, SET_KINDS, make_synthetic_motion,
                             set_classes)

#: The module the ``'pretrained'`` model needs.
PRETRAIN_MODULE = 'projects.synthetic_accuracy.accuracy.videomae_pretrain'

#: What ``--fast`` sets: a handful of tiny clips, a 3-block 48-channel
#: model, one epoch per stage, every strategy at one headline and one
#: stress r, every set compared whatever its accuracy (the model is
#: untrained); and one torch thread unless ``--threads`` is given.
FAST = dict(clips=(2, 1, 2),
            probe_clips=2,
            num_classes=2,
            epochs=1,
            finetune_epochs=1,
            pretrain_epochs=1,
            ft_epochs=1,
            drop_numbers=[8],
            stress_drop_numbers=[24],
            ft_drop_numbers=[8],
            random_seeds=[0],
            chance_multiple=0.)
FAST_ENCODER = dict(embed_dims=48, num_heads=2, depth=3)

#: Frames of every generated clip: the test view's 16, so that each
#: token's frames are known without temporal jitter.
NUM_FRAMES = 16

#: For the estimate printed at the start, measured here (process CPU time,
#: one thread): seconds per clip of generating a set and of decoding one
#: view; seconds of one fvcore count, one probe fit, and the overhead of
#: one training stage (Runner, checkpoint).
GENERATE_SECONDS = dict(shape=0.02, motion=0.02, footage=0.05)
DECODE_SECONDS = 0.02
FLOPS_SECONDS = 0.3
PROBE_SECONDS = 0.05
STAGE_SECONDS = 10.
#: Share of the training clips' decoding (in the loader's worker process)
#: that adds to the wall time when the main process uses every core.
TRAIN_DECODE_SHARE = 0.5


def _check_choices(name: str, values, allowed) -> None:
    bad = [v for v in values if v not in allowed]
    if bad or not values or len(set(values)) != len(values):
        raise ValueError(f'{name} {list(values)}: give distinct values, each '
                         f'one of {tuple(allowed)}.')


def check_options(args: argparse.Namespace) -> None:
    """Raise a ``ValueError`` naming the first bad option of ``args``."""
    _check_choices('--sets', args.sets, tuple(SET_KINDS))
    _check_choices('--models', args.models, MODELS)
    _check_choices('--strategies', args.strategies,
                   tuple(STRATEGIES) + tuple(BRACKETS))
    for name in ('epochs', 'finetune_epochs', 'pretrain_epochs', 'ft_epochs',
                 'probe_clips'):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f'--{name.replace("_", "-")}={value} must be '
                             '>= 1.')
    for name in ('drop_numbers', 'stress_drop_numbers', 'ft_drop_numbers'):
        values = getattr(args, name)
        if len(set(values)) != len(values) or any(r < 1 for r in values):
            raise ValueError(f'--{name.replace("_", "-")} {values}: give '
                             'distinct values >= 1 (r=0, the unpruned '
                             'model, is always tested).')
    both = set(args.drop_numbers) & set(args.stress_drop_numbers)
    if both:
        raise ValueError(f'r {sorted(both)} is both a headline budget and a '
                         'stress test.')
    if 'random' in args.strategies and not args.random_seeds:
        raise ValueError("--random-seeds: 'random' needs at least one seed.")
    if not args.ft_lr_scale > 0:
        raise ValueError(f'--ft-lr-scale={args.ft_lr_scale} must be > 0.')
    if not args.chance_multiple >= 0:
        raise ValueError(f'--chance-multiple={args.chance_multiple} must be '
                         '>= 0 (the bar is this times chance; 0 compares '
                         'every set).')
    if any(n < 1 for n in args.clips):
        raise ValueError(f'--clips {list(args.clips)}: every split needs '
                         '>= 1 clip per class.')
    for kind in args.sets:
        if not 2 <= args.num_classes <= len(set_classes(kind)):
            raise ValueError(f'--num-classes={args.num_classes} must be '
                             f'between 2 and {len(set_classes(kind))} for '
                             f'the {kind} set.')
    if args.ft_models:
        _check_choices('--ft-models', args.ft_models, MODELS)
    missing = [m for m in args.ft_models if m not in args.models]
    if missing:
        raise ValueError(f'--ft-models {missing} are not in --models '
                         f'{list(args.models)}.')
    if 'pretrained' in args.models:
        if not osp.isfile(args.pretrain_config):
            raise ValueError(f'--pretrain-config={args.pretrain_config!r} '
                             'is not a file; the pretrained model needs the '
                             'VideoMAE pre-training config.')
        importlib.import_module(PRETRAIN_MODULE)


def prepare_config(args: argparse.Namespace, roots: Sequence[str], epochs: int,
                   work_dir: str) -> Config:
    """The r=0 training config, pointed at the generated sets ``roots``."""
    cfg = Config.fromfile(args.config)
    if args.fast:
        cfg.model.backbone.update(FAST_ENCODER)
        cfg.model.cls_head.in_channels = FAST_ENCODER['embed_dims']
        cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    set_epochs(cfg, epochs)
    cfg.model.cls_head.num_classes = args.num_classes
    point_at_data(cfg, roots, ('train', 'val'))
    cfg.model.backbone.update(drop_number=0, strategy='sta')
    cfg.work_dir = work_dir
    return cfg


def prepare_pretrain_config(args: argparse.Namespace, cfg: Config,
                            roots: Sequence[str], work_dir: str) -> Config:
    """The pre-training config: ``cfg``'s encoder, the sets' train clips."""
    pre = Config.fromfile(args.pretrain_config)
    match_encoder(pre, cfg)
    if args.fast:
        pre.train_dataloader.update(num_workers=0, persistent_workers=False)
    if args.pretrain_cfg_options:
        pre.merge_from_dict(args.pretrain_cfg_options)
    set_epochs(pre, args.pretrain_epochs, '--pretrain-epochs')
    point_at_data(pre, roots, ('train', ))
    pre.work_dir = work_dir
    return pre


def finetune_config(args: argparse.Namespace, cfg: Config, checkpoint: str,
                    strategy: str, r: int, work_dir: str) -> Config:
    """``cfg`` fine-tuned from ``checkpoint`` with ``strategy`` at ``r``.

    Every control gets the same epochs and learning rate.
    """
    ft = copy.deepcopy(cfg)
    ft.model.backbone.pop('init_cfg', None)
    ft.model.backbone.update(drop_number=r, strategy=strategy)
    ft.load_from = checkpoint
    set_epochs(ft, args.ft_epochs, '--ft-epochs')
    ft.optim_wrapper.optimizer.lr *= args.ft_lr_scale
    ft.work_dir = work_dir
    return ft


def _train_steps(clips: int, batch: int, epochs: int) -> int:
    return math.ceil(clips / batch) * epochs


def calibrate(cfg: Config, drop_numbers: Sequence[int]) -> Dict:
    """Seconds of one r=0 training step, and of one clip's forward at r.

    On noise, with ``cfg``'s backbone (STA for every r: the strategies cost
    nearly alike at one r).
    """
    with DefaultScope.overwrite_default_scope('mmaction'):
        backbone = BACKBONES.build(copy.deepcopy(cfg.model.backbone))
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    batch = cfg.train_dataloader.batch_size
    shape = (batch, 3, cfg.model.backbone.num_frames,
             cfg.model.backbone.img_size, cfg.model.backbone.img_size)
    clip = torch.randn(shape)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        backbone(clip).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - start)
    forward = {}
    backbone.eval()
    with torch.inference_mode():
        for r in sorted({0} | set(drop_numbers)):
            backbone.init_sta(r,
                              'sta',
                              0,
                              fused_attention=backbone.fused_attention)
            backbone.forward_pruned(clip)
            start = time.perf_counter()
            backbone.forward_pruned(clip)
            forward[r] = (time.perf_counter() - start) / batch
    return dict(step=min(seconds[1:]), forward=forward, batch=batch)


def estimate_minutes(args: argparse.Namespace, sets: Sequence[str],
                     groups: Sequence[Sequence[str]], unit: Dict,
                     variants: Sequence[str]) -> Dict[str, float]:
    """Minutes of each part of the run, from :func:`calibrate`'s seconds.

    Stages that a previous run left are counted too (an upper bound).
    """
    n_train, n_val, n_test = (n * args.num_classes for n in args.clips)
    n_probe = min(args.probe_clips, args.clips[0]) * args.num_classes
    step, fwd, batch = unit['step'], unit['forward'], unit['batch']
    out = dict(data=sum(
        (n_train + n_val + n_test) * GENERATE_SECONDS[k] for k in sets) / 60)
    train = pretrain = finetune = 0.0
    decode = DECODE_SECONDS * TRAIN_DECODE_SHARE
    for group in groups:
        clips = n_train * len(group)
        val = n_val * len(group) * (fwd[0] + DECODE_SECONDS)
        train += len(
            args.models) * (_train_steps(clips, batch, args.epochs) * step +
                            STAGE_SECONDS + val + clips * args.epochs * decode)
        if 'pretrained' in args.models:
            pretrain += _train_steps(clips, batch,
                                     args.pretrain_epochs) * step * 0.55
        for r in args.ft_drop_numbers:
            share = fwd[r] / fwd[0]  # a step at r against one at r=0
            finetune += len(args.ft_models) * (
                _train_steps(clips, batch, args.ft_epochs) * step *
                (1 + 2 * share) + 3 *
                (STAGE_SECONDS + clips * args.ft_epochs * decode + val))
    out.update(train=train / 60,
               pretrain=pretrain / 60,
               finetune=finetune / 60)
    count = len(variants) + (len(args.random_seeds) - 1) * (
        'random' in variants)  # points per r
    # decoding, then the gate's r=0 and the sweep's (the cosine reference)
    sweep = (n_test + n_probe) * (DECODE_SECONDS + 2 * fwd[0])
    for r in args.drop_numbers + args.stress_drop_numbers:
        probe = n_probe if r in args.drop_numbers else 0
        sweep += count * (
            (n_test + probe) * fwd[r] + FLOPS_SECONDS / len(sets) +
            (PROBE_SECONDS if probe else 0))
    out['sweep'] = len(sets) * len(args.models) * sweep / 60
    # four models (the r=0 one and three fine-tuned), each tested three ways
    tests = sum(2 * fwd[r] + fwd[0] for r in args.ft_drop_numbers)
    out['finetune_tests'] = len(sets) * len(args.ft_models) * 4 * n_test * \
        (tests + DECODE_SECONDS) / 60
    out['total'] = sum(out.values())
    return out


def _describe_set(kind: str, args: argparse.Namespace) -> str:
    n_train, n_val, n_test = args.clips
    classes = ', '.join(set_classes(kind)[:args.num_classes])
    what = dict(
        shape='one moving object whose shape is the class, in every frame, '
        'over a static synthetic texture (the easy case)',
        footage='one moving object whose shape is the class, drawn in only '
        '2-3 consecutive of the 8 temporal slices, over a static or slowly '
        'panning crop of a frame of a real clip',
        motion='one disc, the same in every class, whose motion is the '
        'class; a band of the background slides')[kind]
    return (f'Generated {kind} set: {what}. Classes: {classes}. '
            f'{n_train}/{n_val}/{n_test} clips per class (train/val/test); '
            f'test top-1 over {n_test * args.num_classes} clips, probe fitted '
            f'on {min(args.probe_clips, n_train) * args.num_classes} '
            'training clips.')


def available_sets(args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """The sets this machine can generate, and why the others are skipped."""
    sets, skipped = [], []
    for kind in args.sets:
        if kind == 'footage' and not (args.footage_dir
                                      and footage_sources(args.footage_dir)):
            skipped.append(
                f'footage set: no real clips in --footage-dir '
                f'{args.footage_dir!r} (a fresh clone has no ../shared/data)')
            continue
        sets.append(kind)
    if not sets:
        raise ValueError(f'no set to run: {"; ".join(skipped)}.')
    return sets, skipped


def training_groups(sets: Sequence[str]) -> List[List[str]]:
    """Sets with the same classes, which one model is trained on together."""
    by_classes: Dict[tuple, List[str]] = {}
    for kind in sets:
        by_classes.setdefault(set_classes(kind), []).append(kind)
    return list(by_classes.values())


def _model_runs(args, group, roots, group_dir, logger, trainings):
    """Train the models of one group; returns model -> (cfg, stage meta)."""
    out = {}
    name = '+'.join(group)
    for model in args.models:
        model_dir = osp.join(group_dir, model)
        if model == 'scratch':
            cfg = prepare_config(args, roots, args.epochs,
                                 osp.join(model_dir, 'train'))
            meta = train_stage(cfg, roots, logger, args.retrain)
        else:
            cfg = prepare_config(args, roots, args.finetune_epochs,
                                 osp.join(model_dir, 'train'))
            pre_cfg = prepare_pretrain_config(args, cfg, roots,
                                              osp.join(model_dir, 'pretrain'))
            pre = train_stage(pre_cfg, roots, logger, args.retrain)
            ref = _cached(
                osp.join(model_dir, 'pretrain_reference', 'reference.json'),
                pre['fingerprint'], args.retrain, lambda: pretrain_reference(
                    pre_cfg, pre['checkpoint'],
                    osp.join(model_dir, 'pretrain_reference')))
            trainings.append(
                dict(pre,
                     set=name,
                     model=model,
                     stage='pre-train',
                     reference=ref))
            init = importlib.import_module(PRETRAIN_MODULE).encoder_init_cfg
            cfg.model.backbone.init_cfg = init(pre['checkpoint'])
            meta = train_stage(cfg,
                               roots,
                               logger,
                               args.retrain,
                               upstream=pre['fingerprint'])
        trainings.append(
            dict(meta,
                 set=name,
                 model=model,
                 stage='train at r=0'
                 if model == 'scratch' else 'fine-tune at r=0'))
        out[model] = (cfg, meta)
    return out


def _cached(cache_file: str, stamp: str, retrain: bool, compute) -> Dict:
    """``compute()``, or what a run with the same ``stamp`` left there."""
    if not retrain and osp.isfile(cache_file):
        with open(cache_file) as f:
            saved = json.load(f)
        if saved.pop('stamp', None) == stamp:
            return saved
    out = compute()
    mkdir_or_exist(osp.dirname(cache_file))
    with open(cache_file, 'w') as f:
        json.dump(dict(out, stamp=stamp), f, indent=1)
    return out


def _recognizer(cfg: Config, checkpoint: str):
    """The trained recognizer of ``cfg``, in eval mode, at r=0."""
    with DefaultScope.overwrite_default_scope('mmaction'):
        return build_recognizer(cfg, checkpoint)


def _gate(run: Dict, args, kind: str, model: str) -> Dict:
    """Is the unpruned model clearly above chance on this set?"""
    correct = [float(p == y) for p, y in zip(run['pred'], run['labels'])]
    top1 = mean_interval(correct)
    chance = 1 / args.num_classes
    bar = args.chance_multiple * chance
    return dict(set=kind,
                model=model,
                top1=top1,
                chance=chance,
                bar=bar,
                compared=top1['low'] >= bar)


def _sweep_set(args, kind, model, cfg, meta, data_root, work_dir, variants,
               flops, logger):
    """The gate, then the sweep of one set and model; (runs, gate)."""
    stamp = f'{meta["fingerprint"]}/{args.probe_clips}'
    cache = osp.join(work_dir, 'sweep_runs.json')
    headline = {'r0'} | {
        point_key(p)
        for p in sweep_points(variants, args.drop_numbers, args.random_seeds)
    }
    loaded: Dict = {}

    def compute(todo):
        if not loaded:  # decoded and built only when a point is missing
            loaded.update(test=load_split(cfg, data_root, 'test'),
                          probe=load_split(cfg,
                                           data_root,
                                           'train',
                                           per_class=args.probe_clips),
                          model=_recognizer(cfg, meta['checkpoint']))
        return sweep_split(loaded['model'], cfg, loaded['test'], todo,
                           loaded['probe'], headline, flops, logger)

    base = sweep_points(variants, [], [])
    gate = _gate(
        cached_sweep(cache, stamp, base, compute, args.retrain)[0], args, kind,
        model)
    print_log(
        f'{kind}/{model}: unpruned test top-1 '
        f'{100 * gate["top1"]["mean"]:.1f}% [{100 * gate["top1"]["low"]:.1f}'
        f', {100 * gate["top1"]["high"]:.1f}] (chance '
        f'{100 * gate["chance"]:.1f}%); ' +
        ('comparing strategies' if gate['compared'] else
         f'NOT comparing strategies: the lower bound is under '
         f'{100 * gate["bar"]:.1f}%'),
        logger=logger)
    points = base
    if gate['compared']:
        points = sweep_points(variants,
                              args.drop_numbers + args.stress_drop_numbers,
                              args.random_seeds)
        print_log(f'{kind}/{model}: sweeping {len(points)} test points',
                  logger=logger)
    runs = cached_sweep(cache, stamp, points, compute, args.retrain)
    return runs, gate


def _finetune(args, group, roots, tested, model, cfg, meta, model_dir, logger,
              flops, trainings):
    """The fine-tuning controls of one model, trained on the group's
    ``roots``, tested on the sets of ``tested`` (set -> root)."""
    out = []
    for r in args.ft_drop_numbers:
        arms = [('sta', r), ('random', r), ('sta', 0)]
        tuned = {}
        for strategy, at in arms:
            label = f'{strategy} at r={r}' if at else 'r=0, same epochs'
            ft_cfg = finetune_config(
                args, cfg, meta['checkpoint'], strategy, at,
                osp.join(model_dir,
                         f'ft_{strategy}_r{at}' if at else f'ft_r0_for_r{r}'))
            ft = train_stage(ft_cfg,
                             roots,
                             logger,
                             args.retrain,
                             upstream=meta['fingerprint'])
            trainings.append(
                dict(ft,
                     set='+'.join(group),
                     model=model,
                     stage=f'fine-tune: {label}'))
            tuned[label] = (ft_cfg, ft)
        tuned = {'none (the r=0 model)': (cfg, meta), **tuned}
        tests = [point('sta', r), point('random', r, args.random_seeds[0])]
        names = [f'sta r={r}', f'random r={r}', 'r=0']
        for kind, root in tested.items():
            test: List = []
            correct = {}
            for label, (c, m) in tuned.items():

                def compute(todo, c=c, m=m, root=root):
                    test[:] = test or [load_split(c, root, 'test')]
                    return sweep_split(_recognizer(c, m['checkpoint']), c,
                                       test[0], todo, None, None, flops,
                                       logger)

                runs = cached_sweep(
                    osp.join(model_dir, f'ft_tests_{kind}_r{r}',
                             f'{_slug(label)}.json'),
                    f'{m["fingerprint"]}/{r}',
                    sweep_points(['sta'], [], []) + tests, compute,
                    args.retrain)
                by_key = {point_key(x): x for x in runs}
                correct[label] = {
                    name: [
                        float(p == y)
                        for p, y in zip(by_key[point_key(q)]['pred'], by_key[
                            point_key(q)]['labels'])
                    ]
                    for name, q in zip(names, tests + [point('sta', 0)])
                }
            for label in tuned:
                if label.startswith('none'):
                    continue
                out.append(
                    dict(set=kind,
                         model=model,
                         r=r,
                         label=label,
                         tests={
                             n: mean_interval(correct[label][n])
                             for n in names
                         },
                         vs={
                             n: {
                                 other:
                                 paired_interval(correct[label][n],
                                                 correct[other][n])
                                 for other in tuned if other != label
                             }
                             for n in names
                         } if label.startswith('sta') else {}))
            out.append(
                dict(set=kind,
                     model=model,
                     r=r,
                     label='none (the r=0 model)',
                     tests={
                         n: mean_interval(correct['none (the r=0 model)'][n])
                         for n in names
                     }))
        print_log(
            f'{"+".join(group)}/{model}: fine-tuning controls at r={r} '
            'done',
            logger=logger)
    return out


def _slug(text: str) -> str:
    return ''.join(c if c.isalnum() else '_' for c in text)


def run_accuracy_benchmark(args: argparse.Namespace) -> Dict:
    """Data, training, sweeps and fine-tuning controls; what results.json
    holds.

    Args:
        args (argparse.Namespace): The options of
            ``tools/accuracy_benchmark.py`` (see its ``--help``).
    """
    if args.fast:
        for key, value in FAST.items():
            setattr(args, key, value)
        # a second thread buys little on tensors this small and costs a lot
        # when other processes share the cores (the test suite's case)
        if args.threads is None:
            args.threads = 1
    if args.ft_models is None:
        args.ft_models = list(args.models[:1])
    check_options(args)
    setup_cpu(args.threads, flush_denormal=True)
    mkdir_or_exist(args.work_dir)
    wall = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    logger = MMLogger.get_instance(
        f'accuracy_benchmark_{time.strftime("%Y%m%d_%H%M%S")}_'
        f'{time.perf_counter_ns()}',
        log_file=osp.join(args.work_dir, 'benchmark.log'),
        log_level='INFO')
    sets, skipped = available_sets(args)
    for reason in skipped:
        print_log(f'Skipping the {reason}.', logger=logger)
    groups = training_groups(sets)
    base_cfg = prepare_config(args, [osp.join(args.work_dir, 'none')],
                              args.epochs, args.work_dir)
    backbone = base_cfg.model.backbone
    side = backbone.img_size // backbone.patch_size
    slices = backbone.num_frames // backbone.get('tubelet_size', 2)
    largest = max_drop_number(side * side, slices)
    for name in ('drop_numbers', 'stress_drop_numbers', 'ft_drop_numbers'):
        bad = [r for r in getattr(args, name) if not 0 <= r <= largest]
        if bad:
            raise ValueError(
                f'--{name.replace("_", "-")} {bad}: every r must be between '
                f'1 and {largest} for {slices} slices of {side}x{side} '
                'tokens.')
    variants = [
        v for v in args.strategies
        if v not in BRACKETS or any(k in MASKED_KINDS for k in sets)
    ]
    unit = calibrate(
        base_cfg,
        args.drop_numbers + args.stress_drop_numbers + args.ft_drop_numbers)
    est = estimate_minutes(args, sets, groups, unit, variants)
    print_log(
        f'Estimated wall time: {est["total"]:.1f} min on this machine now '
        f'({torch.get_num_threads()} torch threads; load average '
        f'{load_start}; {unit["step"]:.2f} s per training step of '
        f'{unit["batch"]} clips, {unit["forward"][0]:.3f} s per clip '
        'unpruned) = ' + ', '.join(f'{k} {v:.1f}'
                                   for k, v in est.items() if k != 'total') +
        ' min. Stages a previous run left with the same settings are '
        'reused.',
        logger=logger)
    stages: Dict[str, float] = {}  # wall minutes of each part, measured
    lap = [time.perf_counter()]

    def clock(part: str) -> None:
        now = time.perf_counter()
        stages[part] = stages.get(part, 0.) + (now - lap[0]) / 60
        lap[0] = now

    roots = {k: osp.join(args.work_dir, k, 'data') for k in sets}
    for kind in sets:
        n_train, n_val, n_test = args.clips
        make_synthetic_motion(
            roots[kind],
            dict(train=n_train, val=n_val, test=n_test),
            num_classes=args.num_classes,
            num_frames=NUM_FRAMES,
            force=args.regenerate,
            kind=kind,
            footage_dir=args.footage_dir if kind == 'footage' else None)
    runs: List[Dict] = []
    trainings: List[Dict] = []
    finetune: List[Dict] = []
    gates: List[Dict] = []
    flops: Dict = {}
    clock('data')
    for group in groups:
        group_dir = osp.join(args.work_dir, 'models', '+'.join(group))
        models = _model_runs(args, group, [roots[k] for k in group], group_dir,
                             logger, trainings)
        clock('train')
        for model, (cfg, meta) in models.items():
            for kind in group:
                if kind not in MASKED_KINDS:
                    print_log(
                        f'{kind}: no object masks, so no evidence '
                        'metric and no brackets.',
                        logger=logger)
                mine = [
                    v for v in variants
                    if v not in BRACKETS or kind in MASKED_KINDS
                ]
                got, gate = _sweep_set(
                    args, kind, model, cfg, meta, roots[kind],
                    osp.join(group_dir, model, f'sweep_{kind}'), mine, flops,
                    logger)
                runs += [dict(x, set=kind, model=model) for x in got]
                gates.append(gate)
                clock(f'sweep {kind}')
        for model in args.ft_models:
            compared = {
                g['set']
                for g in gates if g['model'] == model and g['compared']
            }
            if not compared & set(group):
                print_log(
                    f'{"+".join(group)}/{model}: no fine-tuning '
                    'controls, since no set of the group is compared.',
                    logger=logger)
                continue
            cfg, meta = models[model]
            finetune += _finetune(
                args, group, [roots[k] for k in group],
                {k: roots[k]
                 for k in group if k in compared}, model, cfg, meta,
                osp.join(group_dir, model), logger, flops, trainings)
            clock('fine-tuning controls and their tests')
        print_log(
            f'{"+".join(group)} done after '
            f'{(time.perf_counter() - wall) / 60:.1f} min',
            logger=logger)

    rows = summarise(runs)
    info = dict(
        model=(f'STAViT {backbone.depth} blocks x {backbone.embed_dims} '
               f'channels, {backbone.num_heads} heads, trained on this '
               'machine'),
        view=(f'one view = 1 clip x {backbone.num_frames} frames x '
              f'{backbone.img_size}x{backbone.img_size}, centre crop'),
        hardware=(f'{platform.machine()} CPU, {os.cpu_count()} cores, '
                  f'{torch.get_num_threads()} torch threads'),
        sets={kind: _describe_set(kind, args)
              for kind in sets},
        skipped=skipped,
        headline=list(args.drop_numbers),
        stress=list(args.stress_drop_numbers),
        random_seeds=list(args.random_seeds),
        command=' '.join([
            'python projects/synthetic_accuracy/tools/'
            'accuracy_benchmark.py'
        ] + [shlex.quote(a) for a in sys.argv[1:]]),
        estimate_minutes=round(est['total'], 1),
        estimate={k: round(v, 2) for k, v in est.items()},
        stage_minutes={k: round(v, 2) for k, v in stages.items()},
        load=dict(start=load_start,
                  end=[round(x, 2) for x in os.getloadavg()]),
        wall_minutes=(time.perf_counter() - wall) / 60)
    result = dict(info=info,
                  trainings=trainings,
                  gates=gates,
                  rows=rows,
                  runs=runs,
                  finetune=finetune)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(result, f)
    page = markdown(rows, info, args.drop_numbers, args.stress_drop_numbers,
                    finetune, trainings, gates)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(page)
    for kind, model in dict.fromkeys((x['set'], x['model']) for x in rows):
        mine = [x for x in rows if (x['set'], x['model']) == (kind, model)]
        plot(
            mine,
            osp.join(args.work_dir, f'accuracy_vs_gflops_{kind}_{model}.png'),
            f'{kind} set, {model} model: {info["model"]}; {info["view"]}; '
            'bars: 95% bootstrap intervals over test clips',
            args.stress_drop_numbers)
    if args.update_readme:
        with open(args.readme) as f:
            text = f.read()
        with open(args.readme, 'w') as f:
            f.write(
                replace_section(
                    text,
                    readme_section(rows, info, args.drop_numbers, finetune,
                                   gates)))
    print_log(
        f'Done in {info["wall_minutes"]:.1f} min (estimated '
        f'{est["total"]:.1f}; load average {info["load"]["end"]} now). '
        f'Wrote results.md, results.json and accuracy_vs_gflops_*.png in '
        f'{args.work_dir}' +
        (f'; filled {args.readme}' if args.update_readme else ''),
        logger=logger)
    return result
