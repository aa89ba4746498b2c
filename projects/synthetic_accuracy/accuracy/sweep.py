"""The accuracy benchmark's test sweep: every strategy and r on one Runner.

One mmengine ``Runner`` is built per checkpoint; before each test pass
the backbone's settings are changed with ``STAViT.init_sta`` (the setter
that checks them), so the checkpoint is loaded and checked
(``CheckpointKeysHook``) once, not once per point. A forward hook keeps the
backbone's pooled output of every test clip, for the cosine against the
unpruned model's. :func:`cached_sweep` keeps the runs beside the sweep, so
a rerun with the same checkpoint tests only the points it lacks.
"""
import copy
import json
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from sta_mmaction.analysis import backbone_report, view_shape
from sta_mmaction.models import unwrap
from .report import VARIANTS, pooled_cosine


class PooledFeatureHook(Hook):
    """Keep the backbone's output of every test clip, in test order.

    The torch forward hook records only inside test iterations, so the
    counting forwards of a FLOPs report are left out. ``LOWEST`` priority:
    it switches on after every other hook's ``before_test_iter``.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.features: List[torch.Tensor] = []
        self._on = False
        self._handle = None

    def before_test(self, runner) -> None:
        if self._handle is None:
            self._handle = unwrap(runner.model).backbone.register_forward_hook(
                self._keep)
        self.features = []

    def _keep(self, module, args, output) -> None:
        if self._on:
            self.features.append(output.detach().float().cpu())

    def before_test_iter(self, runner, batch_idx: int,
                         data_batch: Optional[Dict] = None) -> None:
        self._on = True

    def after_test_iter(self, runner, batch_idx: int,
                        data_batch: Optional[Dict] = None,
                        outputs=None) -> None:
        self._on = False

    def pooled(self) -> torch.Tensor:
        """(N, C) outputs of the last test epoch."""
        return torch.cat(self.features)


def test_config(cfg: Config, checkpoint: str, work_dir: str) -> Config:
    """The test-only config of a trained checkpoint (train keys dropped)."""
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)  # the Runner adds a stamp
    cfg.log_level = 'WARNING'  # the benchmark logs one line per point
    cfg.custom_hooks = [dict(type='CheckpointKeysHook')]
    cfg.model.backbone.pop('init_cfg', None)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator'):
        cfg.pop(key, None)
    return cfg


def point(variant: str, r: int, seed: int = 0) -> Dict:
    """One sweep point: a :data:`VARIANTS` key at ``r`` (and a seed)."""
    strategy, prop_attn = VARIANTS[variant]
    return dict(
        variant=variant,
        strategy=strategy,
        prop_attn=prop_attn,
        r=r,
        seed=seed if strategy == 'random' else None)


def sweep_points(variants: Sequence[str], drop_numbers: Sequence[int],
                 random_seeds: Sequence[int]) -> List[Dict]:
    """The shared ``r=0`` point, then every variant (and seed) at each r."""
    points = [point(variants[0], 0)]
    for r in sorted(set(drop_numbers) - {0}):
        for v in variants:
            seeds = random_seeds if VARIANTS[v][0] == 'random' else [0]
            points += [point(v, r, s) for s in seeds]
    return points


def run_sweep(cfg: Config,
              checkpoint: str,
              work_dir: str,
              points: Sequence[Dict],
              flops_cache: Optional[Dict] = None,
              reference: Optional[torch.Tensor] = None,
              progress: bool = True) -> List[Dict]:
    """Test ``checkpoint`` at every point; top-1, cosine and GFLOPs each.

    Args:
        cfg (Config): The training config the checkpoint was trained with.
        checkpoint (str): The checkpoint.
        work_dir (str): The test runner's work dir.
        points (Sequence[dict]): :func:`point` dicts. Without
            ``reference``, the first must be ``r=0``: its features are the
            reference of the cosine.
        flops_cache (dict, optional): (strategy, r, prop_attn) -> the
            fvcore report, shared by sweeps of one architecture, since
            FLOPs do not depend on the weights. Defaults to None, a new one.
        reference (Tensor, optional): (N, C) unpruned features of the test
            clips. Defaults to None, those of the first point.
        progress (bool): Show an mmengine progress bar. Defaults to True.

    Returns:
        list[dict]: One run per point: the point's keys and ``top1``,
        ``mean1``, ``cosine``, ``gflops``, ``tokens`` and ``test_seconds``.
    """
    if reference is None and (not points or points[0]['r'] != 0):
        raise ValueError('run_sweep needs r=0 first (the cosine reference) '
                         'or a reference.')
    flops_cache = {} if flops_cache is None else flops_cache
    runner = Runner.from_cfg(test_config(cfg, checkpoint, work_dir))
    keep = PooledFeatureHook()
    runner.register_hook(keep)
    backbone = unwrap(runner.model).backbone
    shape = view_shape(cfg)
    runs = []
    bar = ProgressBar(len(points)) if progress else None
    for i, p in enumerate(points):
        backbone.init_sta(
            p['r'], p['strategy'], p['seed'], prop_attn=p['prop_attn'])
        key = (p['strategy'], p['r'], p['prop_attn'])
        if key not in flops_cache:
            flops_cache[key] = backbone_report(backbone, shape)
        start = time.perf_counter()
        # runner.test() loads and checks the checkpoint on the first pass;
        # later passes run the loop alone, since the run-level hooks would
        # only render the config again each time
        metrics = runner.test() if i == 0 else runner.test_loop.run()
        feats = keep.pooled()
        if reference is None:
            reference = feats
        runs.append(
            dict(
                p,
                top1=float(metrics['acc/top1']),
                mean1=float(metrics['acc/mean1']),
                cosine=pooled_cosine(feats, reference),
                gflops=round(flops_cache[key]['gflops'], 4),
                tokens=list(flops_cache[key]['tokens']),
                test_seconds=round(time.perf_counter() - start, 2)))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')
    return runs


def _point_key(p: Dict) -> str:
    """A point's identity; ``r=0`` is one point whatever the variant."""
    if p['r'] == 0:
        return 'r0'
    return f'{p["variant"]}/{p["r"]}/{p["seed"]}'


def cached_sweep(cfg: Config,
                 checkpoint: str,
                 work_dir: str,
                 points: Sequence[Dict],
                 stamp: str,
                 flops_cache: Optional[Dict] = None,
                 retest: bool = False,
                 progress: bool = True) -> List[Dict]:
    """:func:`run_sweep`, reusing the runs a sweep of ``stamp`` left.

    The runs are kept in ``work_dir/sweep_runs.json`` with ``stamp``, the
    fingerprint of the checkpoint's training stage. A point missing there
    is tested with the ``r=0`` point first (the cosine reference).

    Args:
        cfg (Config): As for :func:`run_sweep`.
        checkpoint (str): As for :func:`run_sweep`.
        work_dir (str): As for :func:`run_sweep`; the cache lives there.
        points (Sequence[dict]): :func:`point` dicts; one of them is
            ``r=0``.
        stamp (str): Fingerprint of the checkpoint's stage.
        flops_cache (dict, optional): As for :func:`run_sweep`. Defaults to
            None.
        retest (bool): Test every point again. Defaults to False.
        progress (bool): As for :func:`run_sweep`. Defaults to True.

    Returns:
        list[dict]: One run per point, in the order of ``points``, each
        with ``reused`` (whether it came from the cache).
    """
    cache_file = osp.join(work_dir, 'sweep_runs.json')
    done: Dict[str, Dict] = {}
    if not retest and osp.isfile(cache_file):
        with open(cache_file) as f:
            saved = json.load(f)
        if saved.get('stamp') == stamp:
            done = {_point_key(x): dict(x, reused=True) for x in saved['runs']}
    todo = [p for p in points if _point_key(p) not in done]
    if todo:
        base = [p for p in points if p['r'] == 0]
        if not base:
            raise ValueError('cached_sweep needs an r=0 point among points '
                             '(the cosine reference).')
        todo = base[:1] + [p for p in todo if p['r'] != 0]
        for run in run_sweep(cfg, checkpoint, work_dir, todo, flops_cache,
                             progress=progress):
            done[_point_key(run)] = dict(run, reused=False)
        with open(cache_file, 'w') as f:
            json.dump(dict(stamp=stamp, runs=list(done.values())), f,
                      indent=1)
    return [done[_point_key(p)] for p in points]
