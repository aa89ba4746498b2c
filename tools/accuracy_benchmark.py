"""Accuracy against GFLOPs of every token-reduction strategy, on this machine.

    python tools/accuracy_benchmark.py

One command, three steps, everything under ``work_dirs/accuracy_benchmark/``:

1. **Data.** Generates (or reuses) the labelled motion set of
   :mod:`sta_mmaction.datasets.synthetic_motion` in MMAction2's
   ``VideoDataset`` format: train, val and test splits, fixed seeds.
2. **Train.** Trains the small STAViT of
   ``configs/synthetic/sta_vit_tiny_synthetic_motion.py`` at ``r=0`` with
   mmengine's ``Runner`` and MMAction2's own train loop, datasets and
   decord pipelines. A checkpoint trained with the same settings is reused
   (``--retrain`` trains again).
3. **Sweep.** Tests the checkpoint with the standard test pipeline and
   ``Runner.test`` for every strategy and drop number ``r`` (``r=0`` is the
   unpruned model, shared by every strategy), with ``STAReportHook``
   counting GFLOPs per view. ``'random'`` runs once per seed of
   ``--random-seeds``; its top-1 is the mean over seeds.

Outputs: ``results.json``, ``results.md`` (tables) and
``accuracy_vs_gflops.png`` (top-1 against GFLOPs per view, one curve per
strategy), plus ``data_preview.png`` (frames of one clip of each class).
"""
import argparse
import os.path as osp
from typing import Dict, Optional, Sequence

import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)

from mmengine.config import DictAction

from sta_mmaction.apis import run_cli
from sta_mmaction.apis.accuracy_benchmark import run_accuracy_benchmark
from sta_mmaction.core import STRATEGIES
from sta_mmaction.datasets.synthetic_motion import CLASSES

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'synthetic',
                          'sta_vit_tiny_synthetic_motion.py')
#: Drop numbers swept by default: 0 to the largest for 7x7 tokens, 8 slices.
DEFAULT_DROP_NUMBERS = (0, 4, 8, 12, 16, 20, 24)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a motion set, train a small STAViT on it and '
        'sweep strategy x drop number: top-1 against GFLOPs per view.')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG, help='training config')
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'accuracy_benchmark'),
        help='where data, checkpoint, logs and results go')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=len(CLASSES),
        help=f'classes of the generated set (2-{len(CLASSES)})')
    parser.add_argument(
        '--clips',
        type=int,
        nargs=3,
        default=(100, 20, 30),
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='clips per class of each split')
    parser.add_argument(
        '--epochs', type=int, help='training epochs; defaults to the config')
    parser.add_argument(
        '--strategies',
        nargs='+',
        default=list(STRATEGIES),
        choices=STRATEGIES,
        help='strategies to sweep')
    parser.add_argument(
        '--drop-numbers',
        type=int,
        nargs='+',
        default=list(DEFAULT_DROP_NUMBERS),
        help='drop numbers r to sweep (0 is the unpruned model)')
    parser.add_argument(
        '--random-seeds',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help="seeds of the 'random' strategy; its top-1 is their mean")
    parser.add_argument(
        '--retrain',
        action='store_true',
        help='train again even if a matching checkpoint exists')
    parser.add_argument(
        '--regenerate',
        action='store_true',
        help='generate the data again even if a matching set exists')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.depth=3')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    return run_accuracy_benchmark(parse_args(argv))


if __name__ == '__main__':
    run_cli(main)
