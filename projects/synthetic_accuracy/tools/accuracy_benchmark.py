"""Accuracy against GFLOPs of every token-reduction strategy, on this machine.

    python tools/accuracy_benchmark.py  # everything, see README
    python tools/accuracy_benchmark.py --fast  # the whole chain, tiny, < 1 min

For each generated set (``shape``: the object's shape is the class;
``motion``: its motion is) and each model (``scratch``: trained from scratch
at r=0; ``pretrained``: VideoMAE-style tube-masked pre-training, then
fine-tuned at r=0): a sweep of every strategy at every drop number (top-1,
pooled-feature cosine to the unpruned model, GFLOPs), then fine-tuning with
STA on at high r and the speed of a training step at r against r=0.
Outputs under ``--work-dir``: ``results.json``, ``results.md`` and
``accuracy_vs_gflops_<set>.png``. Stages a previous run left with the same
settings are reused. See :mod:`sta_mmaction.apis.accuracy_benchmark`.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The project is not installed: its package is found from the repository
# root, as MMAction2's projects/ are (PYTHONPATH=. there).
sys.path.insert(0, osp.dirname(osp.dirname(PROJECT)))

import sta_mmaction  # noqa: F401,E402  (patches mmaction, registers modules)
from mmengine.config import DictAction  # noqa: E402

from sta_mmaction.apis import run_cli  # noqa: E402
from projects.synthetic_accuracy.accuracy.benchmark import \
    run_accuracy_benchmark  # noqa: E402
from projects.synthetic_accuracy.accuracy.report import (  # noqa: E402
    MODELS, VARIANTS)
from projects.synthetic_accuracy.accuracy.synthetic_sets import \
    SET_KINDS  # noqa: E402

CONFIGS = osp.join(PROJECT, 'configs')
#: Drop numbers swept by default, up to the largest for 7x7 tokens x 8.
DEFAULT_DROP_NUMBERS = (0, 8, 12, 16, 20, 24)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the shape and motion sets, train a small '
        'STAViT from scratch and from VideoMAE pre-training on each, sweep '
        'strategy x drop number (top-1, pooled-feature cosine, GFLOPs) and '
        'fine-tune with STA on.')
    add = parser.add_argument
    add('--fast',
        action='store_true',
        help='the whole chain on a handful of tiny clips and a 3-block '
        'model, one epoch per stage, r in {0, 24} (for the test suite); '
        'overrides the sizes below')
    add('--config',
        default=osp.join(CONFIGS, 'sta_vit_tiny_synthetic.py'),
        help='training (and fine-tuning) config')
    add('--pretrain-config',
        default=osp.join(CONFIGS, 'videomae_pretrain_tiny.py'),
        help='VideoMAE pre-training config of the same encoder')
    add('--work-dir',
        default=osp.join('work_dirs', 'accuracy_benchmark'),
        help='where data, checkpoints, logs and results go')
    add('--sets', nargs='+', default=list(SET_KINDS), help='generated sets')
    add('--models', nargs='+', default=list(MODELS), help='models')
    add('--num-classes', type=int, default=6, help='classes of each set')
    add('--clips',
        type=int,
        nargs=3,
        default=(90, 10, 50),
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='clips per class of each split')
    add('--epochs',
        type=int,
        default=20,
        help='epochs of the from-scratch model at r=0')
    add('--pretrain-epochs',
        type=int,
        default=30,
        help='epochs of VideoMAE pre-training')
    add('--finetune-epochs',
        type=int,
        default=20,
        help='epochs of fine-tuning the pre-trained model at r=0')
    add('--strategies',
        nargs='+',
        default=list(VARIANTS),
        help="strategies to sweep; 'tome_noprop' is ToMe without "
        'proportional attention')
    add('--drop-numbers',
        type=int,
        nargs='+',
        default=list(DEFAULT_DROP_NUMBERS),
        help='drop numbers r to sweep (0, the unpruned model, is added)')
    add('--random-seeds',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help="seeds of 'random' (at least 3): mean and spread over them")
    add('--sta-ft-models',
        nargs='*',
        help="models fine-tuned with STA on; defaults to 'pretrained' if "
        'it runs, else every model; the bare option skips the stage')
    add('--sta-ft-drop-numbers',
        type=int,
        nargs='+',
        default=[16, 24],
        help='r of fine-tuning with STA on')
    add('--sta-ft-epochs',
        type=int,
        default=2,
        help='epochs of fine-tuning with STA on')
    add('--sta-ft-lr-scale',
        type=float,
        default=0.25,
        help="learning rate of fine-tuning with STA on, times the config's")
    add('--speed-repeats',
        type=int,
        default=5,
        help='timed rounds of the training-step speed ratio')
    add('--threads', type=int, help="torch CPU threads; defaults to torch's")
    add('--retrain',
        action='store_true',
        help='train and test every stage again even if a matching one '
        'exists')
    add('--regenerate',
        action='store_true',
        help='generate the data again even if a matching set exists')
    add('--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of --config, e.g. model.backbone.depth=3')
    add('--pretrain-cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of --pretrain-config')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    return run_accuracy_benchmark(parse_args(argv))


if __name__ == '__main__':
    run_cli(main)
