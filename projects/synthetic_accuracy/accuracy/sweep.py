"""The accuracy benchmark's test sweep: every strategy and r, per clip.

Each split is decoded once, through the config's own test dataset and
pipeline (MMAction2's ``VideoDataset``, the geometry of each view recorded
by ``PackActionInputs``), and kept as uint8 clips; every sweep point then
runs the model's data preprocessor, ``STAViT.forward_pruned`` (for the kept
positions, which the Runner's test loop does not hand out) and the fixed
head on them. A point's run keeps, per test clip: the prediction of the
fixed head, the prediction of a linear probe refitted on the training
clips' features under the same point (:mod:`.probe`), the cosine of the
pooled feature to the unpruned one, and the share of evidence tokens kept
after each prune point (:mod:`.evidence`). :func:`cached_sweep` keeps the
runs beside the checkpoint, so a rerun tests only the points it lacks.

Not the library's ``sta_mmaction.apis.sweep`` (``tools/test.py
--drop-numbers``): that runs a Runner test epoch per point, which decodes
every clip again and hands out neither the kept positions nor the features.
"""
import copy
import json
import os.path as osp
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from mmaction.registry import DATASETS
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.utils import mkdir_or_exist

from sta_mmaction.analysis import backbone_report, view_shape
from sta_mmaction.core import STRATEGIES
from .evidence import BRACKETS, EvidenceOracle, kept_evidence, token_evidence
from .probe import fit_probe, probe_predict
from .synthetic_sets import ann_file_name, load_masks

#: What ``PackActionInputs`` keeps of each view: the evidence needs where
#: the view's frames and pixels came from.
GEOMETRY_KEYS = ('frame_inds', 'scale_factor', 'crop_bbox', 'img_shape')

#: Clips per forward.
BATCH = 16


class Split(NamedTuple):
    """One decoded split: uint8 views, labels, names, token cover."""

    inputs: torch.Tensor  # (N, V, C, T, H, W) uint8
    labels: torch.Tensor  # (N, )
    names: List[str]
    cover: Optional[torch.Tensor]  # (N, T0 * h * w) or None


def load_split(cfg: Config,
               data_root: str,
               split: str,
               per_class: Optional[int] = None) -> Split:
    """Decode a split of a generated set with ``cfg``'s test pipeline.

    Args:
        cfg (Config): The model's config (its test dataset and backbone).
        data_root (str): The generated set.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        per_class (int, optional): Only the first clips of each class.
            Defaults to None, all.
    """
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(
        ann_file=osp.join(data_root, ann_file_name(split)),
        data_prefix=dict(video=osp.join(data_root, split)),
        serialize_data=False)  # one process reads it: no gc.collect pass
    pack = ds_cfg.pipeline[-1]
    pack['meta_keys'] = tuple(pack.get('meta_keys', ())) + GEOMETRY_KEYS
    with DefaultScope.overwrite_default_scope('mmaction'):
        dataset = DATASETS.build(ds_cfg)
    counts: Dict[int, int] = {}
    chosen = []
    for i in range(len(dataset)):
        label = int(dataset.get_data_info(i)['label'])
        counts[label] = counts.get(label, 0) + 1
        if per_class is None or counts[label] <= per_class:
            chosen.append(i)
    try:
        masks = load_masks(data_root, split)
    except ValueError:
        masks = None  # a set without object masks (motion)
    backbone = cfg.model.backbone
    inputs, labels, names, cover = [], [], [], []
    for i in chosen:
        item = dataset[i]
        inputs.append(item['inputs'])
        labels.append(int(item['data_samples'].gt_label))
        name = osp.basename(dataset.get_data_info(i)['filename'])
        names.append(name)
        if masks is not None:
            cover.append(
                token_evidence(masks[name], item['data_samples'].metainfo,
                               backbone.tubelet_size,
                               backbone.patch_size).ravel())
    return Split(torch.stack(inputs), torch.tensor(labels), names,
                 torch.from_numpy(np.stack(cover)) if cover else None)


def point(variant: str, r: int, seed: Optional[int] = None) -> Dict:
    """One sweep point: a library strategy or a bracket at ``r``."""
    if variant not in STRATEGIES and variant not in BRACKETS:
        raise ValueError(f'{variant!r} is neither a strategy of the library '
                         f'{STRATEGIES} nor a bracket {tuple(BRACKETS)}.')
    strategy = 'oracle' if variant in BRACKETS else variant
    return dict(variant=variant,
                strategy=strategy,
                r=r,
                seed=seed if strategy == 'random' else None)


def sweep_points(variants: Sequence[str], drop_numbers: Sequence[int],
                 random_seeds: Sequence[int]) -> List[Dict]:
    """The shared ``r=0`` point, then every variant (and seed) at each r."""
    points = [dict(point(variants[0], 0), variant='unpruned')]
    for r in sorted(set(drop_numbers) - {0}):
        for v in variants:
            seeds = random_seeds if v == 'random' else [None]
            points += [point(v, r, s) for s in seeds]
    return points


def point_key(p: Dict) -> str:
    """A point's identity; ``r=0`` is one point whatever the variant."""
    return 'r0' if p['r'] == 0 else f'{p["variant"]}/{p["r"]}/{p["seed"]}'


def _configure(backbone, p: Dict) -> None:
    backbone.init_sta(p['r'],
                      p['strategy'],
                      p['seed'],
                      fused_attention=backbone.fused_attention)


@torch.inference_mode()
def forward_split(model, split: Split, p: Dict) -> Dict[str, np.ndarray]:
    """Run the model at point ``p`` over a split.

    Returns:
        dict: ``pred`` (N, ) of the fixed head, ``features`` (N, C) pooled
        backbone outputs, ``evidence`` (N, P) kept shares, or None when the
        split has no cover.
    """
    backbone = model.backbone
    preds, feats, shares = [], [], []
    bracket = p['variant'] in BRACKETS and p['r'] > 0
    if bracket and split.cover is None:
        raise ValueError(f"the {p['variant']!r} bracket needs the set's "
                         'object masks; this set has none.')
    oracle = EvidenceOracle(backbone, BRACKETS.get(p['variant'], True), p['r'])
    for start in range(0, len(split.labels), BATCH):
        views = split.inputs[start:start + BATCH]  # (B, V, C, T, H, W)
        data = model.data_preprocessor(
            dict(inputs=list(views), data_samples=None), False)
        x = data['inputs'].flatten(0, 1)  # (B * V, C, T, H, W)
        cover = None if split.cover is None else \
            split.cover[start:start + BATCH]  # (B, N)
        if bracket:
            with oracle:
                oracle.set_cover(cover)
                feat, kept = backbone.forward_pruned(x)
            kept = oracle.true_positions(kept)
        else:
            feat, kept = backbone.forward_pruned(x)  # (B, C), [(B, M)]
        preds.append(model.cls_head(feat).argmax(1))
        feats.append(feat.float())
        if cover is not None:
            shares.append(kept_evidence(kept, cover))
    return dict(pred=torch.cat(preds).numpy(),
                features=torch.cat(feats),
                evidence=np.concatenate(shares) if shares else None)


def _cosines(features: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(features.double(),
                                                 reference.double(),
                                                 dim=1).numpy()  # (N, )


def sweep_split(model,
                cfg: Config,
                test: Split,
                points: Sequence[Dict],
                probe_train: Optional[Split] = None,
                probe_points: Optional[Sequence[str]] = None,
                flops_cache: Optional[Dict] = None,
                logger=None) -> List[Dict]:
    """Test ``model`` at every point; per-clip results each.

    The library may refuse a strategy on this model (a ``ValueError`` from
    ``init_sta`` or from the first forward): that point is kept with
    ``skipped`` set to the library's message, and printed.

    Args:
        model (nn.Module): The recognizer, weights loaded, in eval mode.
        cfg (Config): Its config (for the view shape of the FLOPs count).
        test (Split): The test clips.
        points (Sequence[dict]): :func:`point` dicts; ``r=0`` first.
        probe_train (Split, optional): Training clips for the probe.
            Defaults to None, no probe.
        probe_points (Sequence[str], optional): :func:`point_key` of the
            points that get a probe. Defaults to None, every point.
        flops_cache (dict, optional): (strategy, r) -> the fvcore report,
            shared by models of one architecture. Defaults to None.
        logger (optional): Where the skips are printed. Defaults to None,
            the current logger.

    Returns:
        list[dict]: One run per point: its keys and ``labels``, ``pred``,
        ``probe_pred`` (or None), ``cosine``, ``evidence`` (per-clip lists),
        ``gflops``, ``tokens``, ``test_seconds``, ``skipped``.
    """
    if not points or points[0]['r'] != 0:
        raise ValueError('sweep_split needs the r=0 point first (the cosine '
                         'reference).')
    flops_cache = {} if flops_cache is None else flops_cache
    backbone = model.backbone
    shape = view_shape(cfg)
    reference = None
    runs = []
    for p in points:
        start = time.perf_counter()
        try:
            _configure(backbone, p)
            out = forward_split(model, test, p)
        except ValueError as exc:
            if p['r'] == 0:
                raise
            print_log(
                f'Skipping {p["variant"]} at r={p["r"]}, refused '
                f'on this model or set: {exc}',
                logger=logger or 'current')
            runs.append(dict(p, skipped=str(exc)))
            continue
        key = (p['strategy'], p['r'])
        if key not in flops_cache:
            flops_cache[key] = backbone_report(backbone, shape)
        if reference is None:
            reference = out['features']
        probe_pred = None
        if probe_train is not None and (probe_points is None
                                        or point_key(p) in probe_points):
            train = forward_split(model, probe_train, p)
            params = fit_probe(train['features'], probe_train.labels,
                               int(model.cls_head.num_classes))
            probe_pred = probe_predict(params, out['features']).tolist()
        runs.append(
            dict(p,
                 labels=test.labels.tolist(),
                 pred=out['pred'].tolist(),
                 probe_pred=probe_pred,
                 cosine=_cosines(out['features'], reference).tolist(),
                 evidence=None
                 if out['evidence'] is None else out['evidence'].tolist(),
                 gflops=round(flops_cache[key]['gflops'], 4),
                 tokens=list(flops_cache[key]['tokens']),
                 test_seconds=round(time.perf_counter() - start, 2),
                 skipped=None))
    _configure(backbone, dict(r=0, strategy='sta', seed=None))
    return runs


def cached_sweep(cache_file: str,
                 stamp: str,
                 points: Sequence[Dict],
                 compute,
                 retest: bool = False) -> List[Dict]:
    """``compute(todo)``'s runs, reusing those a sweep of ``stamp`` left.

    The runs are kept in ``cache_file`` with ``stamp`` (the checkpoint's
    fingerprint and the sweep's settings). The points missing there are
    passed to ``compute`` with the ``r=0`` point first (the cosine
    reference).

    Returns:
        list[dict]: One run per point, in the order of ``points``, each with
        ``reused``.
    """
    done: Dict[str, Dict] = {}
    if not retest and osp.isfile(cache_file):
        with open(cache_file) as f:
            saved = json.load(f)
        if saved.get('stamp') == stamp:
            done = {point_key(x): dict(x, reused=True) for x in saved['runs']}
    todo = [p for p in points if point_key(p) not in done]
    if todo:
        base = [p for p in points if p['r'] == 0]
        if not base:
            raise ValueError('cached_sweep needs an r=0 point among points '
                             '(the cosine reference).')
        todo = base[:1] + [p for p in todo if p['r'] != 0]
        for run in compute(todo):
            done[point_key(run)] = dict(run, reused=False)
        mkdir_or_exist(osp.dirname(cache_file))
        with open(cache_file, 'w') as f:
            json.dump(dict(stamp=stamp, runs=list(done.values())), f)
    return [done[point_key(p)] for p in points]
