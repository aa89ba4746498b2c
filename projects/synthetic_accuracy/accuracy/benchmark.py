"""Accuracy against GFLOPs of every token-reduction strategy, on this machine.

The logic of ``tools/accuracy_benchmark.py``. For each generated set of
:mod:`projects.synthetic_accuracy.accuracy.synthetic_sets` (``'shape'``, ``'motion'``)
and each model:

* ``'scratch'``: the small STAViT of
  ``projects/synthetic_accuracy/configs/sta_vit_tiny_synthetic.py`` trained from
  scratch at ``r=0``;
* ``'pretrained'``: the same encoder pre-trained VideoMAE-style (tube
  masking, ``projects/synthetic_accuracy/configs/videomae_pretrain_tiny.py``) on the set's
  training clips, then fine-tuned at ``r=0`` with the same config (mean
  pooling and ``fc_norm``);

it tests every strategy (:data:`~sta_mmaction.apis.accuracy_report.VARIANTS`)
at every drop number on the test split, with top-1 and the cosine of the
pooled feature to the unpruned one (:mod:`~sta_mmaction.apis.accuracy_sweep`),
then fine-tunes with STA on at high ``r`` and times a training step at
``r > 0`` against ``r=0`` (:mod:`~sta_mmaction.apis.accuracy_stages`). It
writes ``results.json``, ``results.md`` and one
``accuracy_vs_gflops_<set>.png`` per set
(:mod:`~sta_mmaction.apis.accuracy_report`). Every stage is reused when a
run with the same settings left it.
"""
import argparse
import copy
import importlib
import json
import math
import os.path as osp
import platform
import shlex
import sys
import time
from typing import Dict, List

import torch
from mmaction.registry import MODELS as BACKBONES
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.registry import DefaultScope
from mmengine.utils import mkdir_or_exist

from sta_mmaction.analysis.speed import setup_cpu
from sta_mmaction.core import max_drop_number
from .synthetic_sets import (SET_KINDS, make_synthetic_motion,
                                         preview, set_classes)
from .report import MODELS, VARIANTS, markdown, plot, summarise, \
    winners
from .stages import (match_encoder, point_at_data,
                              pretrain_reference, set_epochs, step_speed,
                              train_stage)
from .sweep import cached_sweep, point, sweep_points

#: The module the ``'pretrained'`` model needs (pre-training model, config
#: helpers).
PRETRAIN_MODULE = 'projects.synthetic_accuracy.accuracy.videomae_pretrain'

#: What ``--fast`` sets: a handful of tiny clips, a 3-block 48-channel
#: model, one epoch per stage, every set, model and strategy at r in
#: {0, 24}; and one torch thread unless ``--threads`` is given.
FAST = dict(
    clips=(2, 1, 2),
    num_classes=2,
    epochs=1,
    finetune_epochs=1,
    pretrain_epochs=1,
    sta_ft_epochs=1,
    drop_numbers=[0, 24],
    sta_ft_drop_numbers=[24],
    speed_repeats=1)
FAST_ENCODER = dict(embed_dims=48, num_heads=2, depth=3)

#: Rough cost of one pre-training step against one fine-tuning step (the
#: encoder sees a tenth of the tokens; the decoder is small), and of a step
#: with STA on against one at r=0 (measured here: 0.5 at r=16, 0.4 at
#: r=24), for the estimate printed at the start.
PRETRAIN_STEP_SHARE = 0.55
PRUNED_STEP_SHARE = 0.5
#: Seconds a test pass spends per clip besides the forward (decoding,
#: pipeline), and per sweep point (runner, settings).
TEST_SECONDS_PER_CLIP = 0.012
TEST_SECONDS_PER_POINT = 0.8


def _check_choices(name: str, values, allowed) -> None:
    bad = [v for v in values if v not in allowed]
    if bad or not values or len(set(values)) != len(values):
        raise ValueError(f'{name} {list(values)}: give distinct values, each '
                         f'one of {tuple(allowed)}.')


def check_options(args: argparse.Namespace) -> None:
    """Raise a ``ValueError`` naming the first bad option of ``args``."""
    _check_choices('--sets', args.sets, tuple(SET_KINDS))
    _check_choices('--models', args.models, MODELS)
    _check_choices('--strategies', args.strategies, tuple(VARIANTS))
    for name in ('epochs', 'finetune_epochs', 'pretrain_epochs',
                 'sta_ft_epochs'):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f'--{name.replace("_", "-")}={value} must be '
                             '>= 1.')
    if len(set(args.sta_ft_drop_numbers)) != len(args.sta_ft_drop_numbers):
        raise ValueError(f'--sta-ft-drop-numbers {args.sta_ft_drop_numbers}'
                         ': give distinct values.')
    if args.speed_repeats < 1:
        raise ValueError(f'--speed-repeats={args.speed_repeats} must be '
                         '>= 1.')
    if not args.sta_ft_lr_scale > 0:
        raise ValueError(f'--sta-ft-lr-scale={args.sta_ft_lr_scale} must be '
                         '> 0.')
    if any(n < 1 for n in args.clips):
        raise ValueError(f'--clips {list(args.clips)}: every split needs '
                         '>= 1 clip per class.')
    for kind in args.sets:
        if not 2 <= args.num_classes <= len(set_classes(kind)):
            raise ValueError(f'--num-classes={args.num_classes} must be '
                             f'between 2 and {len(set_classes(kind))} for '
                             f'the {kind} set.')
    if 'random' in args.strategies and len(set(args.random_seeds)) < 3:
        raise ValueError(f'--random-seeds {list(args.random_seeds)}: '
                         "'random' needs at least 3 distinct seeds for its "
                         'spread.')
    if args.sta_ft_models:
        _check_choices('--sta-ft-models', args.sta_ft_models, MODELS)
    missing = [m for m in args.sta_ft_models if m not in args.models]
    if missing:
        raise ValueError(f'--sta-ft-models {missing} are not in --models '
                         f'{list(args.models)}.')
    if 'pretrained' in args.models:
        if not osp.isfile(args.pretrain_config):
            raise ValueError(f'--pretrain-config={args.pretrain_config!r} '
                             'is not a file; the pretrained model needs the '
                             'VideoMAE pre-training config.')
        try:
            importlib.import_module(PRETRAIN_MODULE)
        except ImportError as exc:
            raise ValueError(
                f"--models 'pretrained' needs {PRETRAIN_MODULE}, which "
                f'cannot be imported ({exc}); run with --models scratch.'
            ) from exc


def prepare_config(args: argparse.Namespace, data_root: str, kind: str,
                   epochs: int, work_dir: str) -> Config:
    """The r=0 training config, pointed at the generated set ``kind``."""
    cfg = Config.fromfile(args.config)
    if args.fast:
        cfg.model.backbone.update(FAST_ENCODER)
        cfg.model.cls_head.in_channels = FAST_ENCODER['embed_dims']
        cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    set_epochs(cfg, epochs)
    cfg.model.cls_head.num_classes = args.num_classes
    point_at_data(cfg, data_root)
    cfg.model.backbone.update(drop_number=0, strategy='sta')
    cfg.work_dir = work_dir
    return cfg


def prepare_pretrain_config(args: argparse.Namespace, cfg: Config,
                            data_root: str, work_dir: str) -> Config:
    """The pre-training config: ``cfg``'s encoder, the set's train clips."""
    pre = Config.fromfile(args.pretrain_config)
    match_encoder(pre, cfg)
    if args.fast:
        pre.train_dataloader.update(num_workers=0, persistent_workers=False)
    if args.pretrain_cfg_options:
        pre.merge_from_dict(args.pretrain_cfg_options)
    set_epochs(pre, args.pretrain_epochs, '--pretrain-epochs')
    point_at_data(pre, data_root)
    pre.work_dir = work_dir
    return pre


def sta_finetune_config(args: argparse.Namespace, cfg: Config,
                        checkpoint: str, r: int, work_dir: str) -> Config:
    """``cfg`` at ``r`` with STA, from ``checkpoint``, a few epochs."""
    ft = copy.deepcopy(cfg)
    ft.model.backbone.pop('init_cfg', None)
    ft.model.backbone.update(drop_number=r, strategy='sta')
    ft.load_from = checkpoint
    set_epochs(ft, args.sta_ft_epochs, '--sta-ft-epochs')
    ft.optim_wrapper.optimizer.lr *= args.sta_ft_lr_scale
    ft.work_dir = work_dir
    return ft


def _train_steps(clips: int, batch: int, epochs: int) -> int:
    return math.ceil(clips / batch) * epochs


def calibrate(cfg: Config) -> float:
    """Seconds of one r=0 training step of ``cfg``'s backbone, on noise."""
    with DefaultScope.overwrite_default_scope('mmaction'):
        backbone = BACKBONES.build(copy.deepcopy(cfg.model.backbone))
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    shape = (cfg.train_dataloader.batch_size, 3,
             cfg.model.backbone.num_frames, cfg.model.backbone.img_size,
             cfg.model.backbone.img_size)
    clip = torch.randn(shape)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        backbone(clip).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - start)
    return min(seconds[1:])


def estimate_minutes(args: argparse.Namespace, step: float,
                     batch: int) -> Dict[str, float]:
    """Minutes of each part of the run, from one step's seconds.

    Stages that a previous run left are counted too (an upper bound).
    """
    n_train, n_val, n_test = (n * args.num_classes for n in args.clips)
    sets = len(args.sets)
    per_set_steps = {
        'scratch': _train_steps(n_train, batch, args.epochs),
        'pretrained': _train_steps(n_train, batch, args.finetune_epochs),
    }
    val = (n_val / batch) * step / 3
    out = dict(data=sets * (n_train + n_val + n_test) * 0.03 / 60)
    out['train'] = sets * sum(per_set_steps[m] * step + val
                              for m in args.models) / 60
    out['pretrain'] = 0.0
    if 'pretrained' in args.models:
        out['pretrain'] = sets * _train_steps(
            n_train, batch, args.pretrain_epochs) * step * \
            PRETRAIN_STEP_SHARE / 60
    points = len(sweep_points(args.strategies, args.drop_numbers,
                              args.random_seeds))
    pass_seconds = n_test * (TEST_SECONDS_PER_CLIP + step / batch / 3 *
                             0.7) + TEST_SECONDS_PER_POINT
    out['sweep'] = sets * len(args.models) * points * pass_seconds / 60
    ft_models = args.sta_ft_models
    ft_steps = _train_steps(n_train, batch, args.sta_ft_epochs) * len(
        args.sta_ft_drop_numbers)
    out['sta_finetune'] = sets * len(ft_models) * (
        ft_steps * step * PRUNED_STEP_SHARE + 2 * len(
            args.sta_ft_drop_numbers) * pass_seconds +
        (args.speed_repeats + 1) * 2.5 * step) / 60
    out['total'] = sum(out.values())
    return out


def _describe_set(kind: str, args: argparse.Namespace) -> str:
    n_train, n_val, n_test = args.clips
    classes = ', '.join(set_classes(kind)[:args.num_classes])
    what = ('the object\'s shape is the class' if kind == 'shape' else
            'the object\'s motion is the class (one disc, 11-17% of the '
            'frame, the same in every class; wrap-around frame; a band of '
            'the background slides)')
    return (f'Generated {kind} set: {what}. Classes: {classes}. '
            f'{n_train}/{n_val}/{n_test} clips per class (train/val/test); '
            f'test top-1 over {n_test * args.num_classes} clips.')


def _model_runs(args, kind, data_root, set_dir, logger, trainings):
    """Train the models of one set; returns model -> (cfg, stage meta)."""
    out = {}
    for model in args.models:
        model_dir = osp.join(set_dir, model)
        if model == 'scratch':
            cfg = prepare_config(args, data_root, kind, args.epochs,
                                 osp.join(model_dir, 'train'))
            meta = train_stage(cfg, data_root, logger, args.retrain)
        else:
            cfg = prepare_config(args, data_root, kind, args.finetune_epochs,
                                 osp.join(model_dir, 'train'))
            pre_cfg = prepare_pretrain_config(
                args, cfg, data_root, osp.join(model_dir, 'pretrain'))
            pre = train_stage(pre_cfg, data_root, logger, args.retrain)
            ref = _cached_reference(args, pre_cfg, pre,
                                    osp.join(model_dir, 'pretrain_reference'))
            print_log(
                f'{kind}/{model}: masked-tube MSE on {ref["clips"]} training '
                f'clips: model {ref["model"]}, predicting the visible '
                f'tubes\' mean colour {ref["visible_mean"]}, predicting '
                f'zeros {ref["zero"]}',
                logger=logger)
            trainings.append(dict(pre, set=kind, model=model,
                                  stage='pre-train', reference=ref))
            init = importlib.import_module(PRETRAIN_MODULE).encoder_init_cfg
            cfg.model.backbone.init_cfg = init(pre['checkpoint'])
            meta = train_stage(cfg, data_root, logger, args.retrain,
                               upstream=pre['fingerprint'])
        trainings.append(
            dict(meta, set=kind, model=model,
                 stage='train at r=0' if model == 'scratch' else
                 'fine-tune at r=0'))
        out[model] = (cfg, meta)
    return out


def _cached(cache_file: str, stamp: str, retrain: bool, compute) -> Dict:
    """``compute()``, or what a run with the same ``stamp`` left in the file.

    For the measurements beside the stages (the pre-training references,
    the step speed), which ``train_stage`` and ``cached_sweep`` do not
    keep.
    """
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


def _cached_reference(args, pre_cfg, pre, work_dir):
    """:func:`pretrain_reference` of ``pre``, or the one a run left."""
    return _cached(
        osp.join(work_dir, 'reference.json'), pre['fingerprint'],
        args.retrain,
        lambda: pretrain_reference(pre_cfg, pre['checkpoint'], work_dir))


def _cached_speed(args, ft_cfg, meta, work_dir):
    """:func:`step_speed` of ``meta``'s checkpoint, or the one a run left."""
    stamp = f'{meta["fingerprint"]}/{args.sta_ft_drop_numbers}/' \
        f'{args.speed_repeats}'
    return _cached(
        osp.join(work_dir, 'step_speed.json'), stamp, args.retrain,
        lambda: step_speed(ft_cfg, meta['checkpoint'],
                           args.sta_ft_drop_numbers, work_dir,
                           repeats=args.speed_repeats))


def _sta_finetune(args, kind, model, cfg, meta, runs, data_root, model_dir,
                  logger, flops):
    """Fine-tune with STA on at each r; before/after top-1 and speed."""
    results = []
    ft_cfgs = {
        r: sta_finetune_config(args, cfg, meta['checkpoint'], r,
                               osp.join(model_dir, f'sta_ft_r{r}'))
        for r in args.sta_ft_drop_numbers
    }
    speed = _cached_speed(args, ft_cfgs[args.sta_ft_drop_numbers[0]], meta,
                          osp.join(model_dir, 'step_speed'))
    print_log(
        f'{kind}/{model}: training step {speed["seconds"]} s at r '
        f'(batch {speed["batch_size"]}); speed-up vs r=0 {speed["ratio"]}',
        logger=logger)
    for r, ft_cfg in ft_cfgs.items():
        pair = [point('sta', 0), point('sta', r)]
        before = [
            x['top1'] for x in runs
            if (x['set'], x['model'], x['variant'], x['r']) == (kind, model,
                                                                'sta', r)
        ]
        if not before:
            before = [
                cached_sweep(cfg, meta['checkpoint'],
                             osp.join(model_dir, f'before_r{r}'), pair,
                             meta['fingerprint'], flops, args.retrain,
                             False)[1]['top1']
            ]
        ft = train_stage(ft_cfg, data_root, logger, args.retrain,
                         upstream=meta['fingerprint'])
        after = cached_sweep(ft_cfg, ft['checkpoint'],
                             osp.join(model_dir, f'after_r{r}'), pair,
                             ft['fingerprint'], flops, args.retrain, False)
        results.append(
            dict(
                set=kind,
                model=model,
                r=r,
                epochs=ft['epochs'],
                lr=ft_cfg.optim_wrapper.optimizer.lr,
                before=before[0],
                after=after[1]['top1'],
                after_r0=after[0]['top1'],
                after_cosine=after[1]['cosine'],
                train_seconds=ft['train_seconds'],
                reused=ft['reused'],
                step_seconds=speed['seconds'],
                speed_ratio=speed['ratio'][str(r)],
                checkpoint=ft['checkpoint']))
        print_log(
            f'{kind}/{model}: STA fine-tune at r={r}: top-1 '
            f'{100 * before[0]:.1f}% -> {100 * after[1]["top1"]:.1f}%',
            logger=logger)
    return results


def _reused_minutes(trainings, runs, finetune) -> float:
    """Minutes that the reused stages took when an earlier run made them."""
    seconds = sum(t['train_seconds'] for t in trainings if t['reused'])
    seconds += sum(x['test_seconds'] for x in runs if x['reused'])
    seconds += sum(x['train_seconds'] for x in finetune if x['reused'])
    return round(seconds / 60, 1)


def run_accuracy_benchmark(args: argparse.Namespace) -> Dict:
    """Data, training, sweeps and STA fine-tuning; what results.json holds.

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
    if args.sta_ft_models is None:
        # the pre-trained model is the one STA is meant for
        args.sta_ft_models = ['pretrained'] if 'pretrained' in args.models \
            else list(args.models)
    check_options(args)
    # Pre-trained weights fine-tune into subnormal activations and
    # gradients, which ran every step 2.7x slower here; flushing them left
    # the losses unchanged to the printed digit.
    setup_cpu(args.threads, flush_denormal=True)
    mkdir_or_exist(args.work_dir)
    wall = time.perf_counter()
    # The tool's own logger: every Runner makes itself the 'current' one.
    logger = MMLogger.get_instance(
        f'accuracy_benchmark_{time.strftime("%Y%m%d_%H%M%S")}_'
        f'{time.perf_counter_ns()}',
        log_file=osp.join(args.work_dir, 'benchmark.log'),
        log_level='INFO')
    probe = prepare_config(args, osp.join(args.work_dir, 'none'),
                           args.sets[0], args.epochs, args.work_dir)
    backbone = probe.model.backbone
    side = backbone.img_size // backbone.patch_size
    slices = backbone.num_frames // backbone.get('tubelet_size', 2)
    largest = max_drop_number(side * side, slices)
    for name in ('drop_numbers', 'sta_ft_drop_numbers'):
        bad = [r for r in getattr(args, name) if not 0 <= r <= largest]
        if bad:
            raise ValueError(
                f'--{name.replace("_", "-")} {bad}: every r must be between '
                f'0 and {largest} for {slices} slices of {side}x{side} '
                'tokens.')
    if 0 in args.sta_ft_drop_numbers:
        raise ValueError('--sta-ft-drop-numbers: fine-tuning with STA on '
                         'needs r > 0; r=0 is the fine-tuned model itself.')
    drop_numbers = sorted(set(args.drop_numbers) | {0})
    batch = probe.train_dataloader.batch_size
    step = calibrate(probe)
    est = estimate_minutes(args, step, batch)
    print_log(
        f'Estimated wall time: {est["total"]:.1f} min on this machine '
        f'({torch.get_num_threads()} torch threads; {step:.2f} s per '
        f'training step of {batch} clips now) = ' + ', '.join(
            f'{k} {v:.1f}' for k, v in est.items() if k != 'total') +
        ' min. Stages a previous run left with the same settings are '
        'reused.',
        logger=logger)
    variants = list(args.strategies)
    points = sweep_points(variants, drop_numbers, args.random_seeds)
    runs: List[Dict] = []
    trainings: List[Dict] = []
    finetune: List[Dict] = []
    flops: Dict = {}
    for kind in args.sets:
        set_dir = osp.join(args.work_dir, kind)
        data_root = osp.join(set_dir, 'data')
        n_train, n_val, n_test = args.clips
        make_synthetic_motion(
            data_root,
            dict(train=n_train, val=n_val, test=n_test),
            num_classes=args.num_classes,
            force=args.regenerate,
            kind=kind)
        preview(data_root, osp.join(args.work_dir, f'data_preview_{kind}.png'))
        models = _model_runs(args, kind, data_root, set_dir, logger,
                             trainings)
        for model, (cfg, meta) in models.items():
            print_log(f'{kind}/{model}: sweeping {len(points)} test points',
                      logger=logger)
            for run in cached_sweep(cfg, meta['checkpoint'],
                                    osp.join(set_dir, model, 'sweep'),
                                    points, meta['fingerprint'], flops,
                                    args.retrain):
                runs.append(dict(run, set=kind, model=model))
        for model in args.sta_ft_models:
            cfg, meta = models[model]
            finetune += _sta_finetune(args, kind, model, cfg, meta, runs,
                                      data_root, osp.join(set_dir, model),
                                      logger, flops)
        print_log(
            f'{kind} set done after '
            f'{(time.perf_counter() - wall) / 60:.1f} min', logger=logger)

    rows = summarise(runs, variants, drop_numbers)
    info = dict(
        model=(f'STAViT {backbone.depth} blocks x {backbone.embed_dims} '
               f'channels, {backbone.num_heads} heads'),
        view=(f'one view = 1 clip x {backbone.num_frames} frames x '
              f'{backbone.img_size}x{backbone.img_size}, centre crop'),
        hardware=(f'{platform.machine()} CPU, {torch.get_num_threads()} '
                  'torch threads'),
        sets={kind: _describe_set(kind, args)
              for kind in args.sets},
        random_seeds=list(args.random_seeds),
        command=' '.join(['python tools/accuracy_benchmark.py'] +
                         [shlex.quote(a) for a in sys.argv[1:]]),
        estimate_minutes=round(est['total'], 1),
        reused_minutes=_reused_minutes(trainings, runs, finetune),
        wall_minutes=(time.perf_counter() - wall) / 60)
    result = dict(
        info=info,
        trainings=trainings,
        rows=rows,
        runs=runs,
        winners={
            s: {m: {str(r): v for r, v in by_r.items()}
                for m, by_r in by_model.items()}
            for s, by_model in winners(rows).items()
        },
        sta_finetune=finetune)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(markdown(rows, variants, info, finetune, trainings))
    for kind in args.sets:
        plot([x for x in rows if x['set'] == kind], variants,
             osp.join(args.work_dir, f'accuracy_vs_gflops_{kind}.png'),
             f'{kind} set: {info["model"]}; {info["view"]}; solid: '
             'pre-trained then fine-tuned, dashed: from scratch')
    print_log(
        f'Done in {info["wall_minutes"]:.1f} min (estimated '
        f'{est["total"]:.1f}; {info["reused_minutes"]:.1f} min of stages '
        'reused from earlier runs). Wrote results.md, results.json and '
        f'accuracy_vs_gflops_<set>.png in {args.work_dir}',
        logger=logger)
    return result
