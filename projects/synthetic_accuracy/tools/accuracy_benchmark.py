"""Token-reduction strategies at equal budgets, on generated clips.

    python projects/synthetic_accuracy/tools/accuracy_benchmark.py --fast
    python projects/synthetic_accuracy/tools/accuracy_benchmark.py \
        --update-readme  # the full run, see the README

Generates the sets (``shape``; ``footage``, backgrounds from the real clips
of ``--footage-dir``, skipped with the reason when there are none), trains a
12-block STAViT at r=0, and compares every strategy of the library at the
same budgets: top-1 of the fixed head, a refitted linear probe, the share of
evidence tokens kept, the pooled cosine, each with 95% bootstrap intervals
over the test clips and paired differences; then the fine-tuning controls.
Outputs under ``--work-dir``: ``results.json``, ``results.md`` and
``accuracy_vs_gflops_<set>_<model>.png``. Stages a previous run left with
the same settings are reused. See
:mod:`projects.synthetic_accuracy.accuracy.benchmark`.
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
from projects.synthetic_accuracy.accuracy.evidence import \
    BRACKETS  # noqa: E402
from sta_mmaction.core import STRATEGIES  # noqa: E402

CONFIGS = osp.join(PROJECT, 'configs')
REPO = osp.dirname(osp.dirname(PROJECT))
#: The paper's kept fractions on 8 slices of 7x7 tokens (71/57/43% at
#: r = 8/12/16, as r = 32/48/64 on ViT-B); larger r is a stress test.
HEADLINE = (4, 8, 12, 16)
STRESS = (24, )


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the shape and footage sets, train a 12-block '
        'STAViT at r=0, compare every token-reduction strategy at equal '
        'budgets (top-1, refitted probe, evidence kept, cosine; paired '
        'bootstrap intervals) and run the fine-tuning controls.')
    add = parser.add_argument
    add('--fast',
        action='store_true',
        help='the whole chain on a handful of tiny clips and a 3-block '
        'model, one epoch per stage, r in {0, 8, 24} (for the test suite); '
        'overrides the sizes below')
    add('--config',
        default=osp.join(CONFIGS, 'sta_vit12_synthetic.py'),
        help='training (and fine-tuning) config')
    add('--pretrain-config',
        default=osp.join(CONFIGS, 'videomae_pretrain_tiny.py'),
        help="VideoMAE pre-training config of the same encoder (--models "
        "pretrained)")
    add('--work-dir',
        default=osp.join('work_dirs', 'accuracy_benchmark'),
        help='where data, checkpoints, logs and results go')
    add('--sets', nargs='+', default=['shape', 'footage'],
        help="generated sets; 'motion' is compared only if its model clears "
        'the bar above chance')
    add('--footage-dir',
        default=osp.join(osp.dirname(REPO), 'shared', 'data'),
        help='real clips whose frames texture the footage set (read at run '
        'time, never copied)')
    add('--models', nargs='+', default=['scratch'],
        help="'scratch' (trained at r=0) and/or 'pretrained' (VideoMAE "
        'pre-training first)')
    add('--num-classes', type=int, default=6, help='classes of each set')
    add('--clips',
        type=int,
        nargs=3,
        default=(90, 5, 25),
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='clips per class of each split')
    add('--probe-clips',
        type=int,
        default=10,
        help='training clips per class the linear probe is fitted on')
    add('--epochs', type=int, default=20,
        help='epochs of the from-scratch model at r=0')
    add('--pretrain-epochs', type=int, default=30,
        help='epochs of VideoMAE pre-training')
    add('--finetune-epochs', type=int, default=20,
        help='epochs of fine-tuning the pre-trained model at r=0')
    add('--strategies',
        nargs='+',
        default=list(STRATEGIES) + list(BRACKETS),
        help="strategies to compare: the library's "
        f'{STRATEGIES} and the brackets {tuple(BRACKETS)}')
    add('--drop-numbers',
        type=int,
        nargs='+',
        default=list(HEADLINE),
        help='headline r, at the paper\'s kept fractions (r=0 is added)')
    add('--stress-drop-numbers',
        type=int,
        nargs='*',
        default=list(STRESS),
        help='larger r, reported as a stress test (no probe)')
    add('--random-seeds',
        type=int,
        nargs='+',
        default=[0],
        help="seeds of 'random'; several are averaged clip by clip")
    add('--chance-multiple',
        type=float,
        default=2.0,
        help='a set is compared only if the lower bound of its unpruned '
        'top-1 interval is at least this times chance (0: every set)')
    add('--ft-models',
        nargs='*',
        help='models that get the fine-tuning controls; defaults to the '
        'first of --models; the bare option skips them')
    add('--ft-drop-numbers',
        type=int,
        nargs='+',
        default=[16],
        help='r of the fine-tuning controls')
    add('--ft-epochs', type=int, default=2,
        help='epochs of every fine-tuning control')
    add('--ft-lr-scale',
        type=float,
        default=0.25,
        help="learning rate of every fine-tuning control, times the "
        "config's")
    add('--threads', type=int, help="torch CPU threads; defaults to torch's")
    add('--retrain',
        action='store_true',
        help='train and test every stage again even if a matching one '
        'exists')
    add('--regenerate',
        action='store_true',
        help='generate the data again even if a matching set exists')
    add('--update-readme',
        action='store_true',
        help="write the results into --readme's results section")
    add('--readme',
        default=osp.join(PROJECT, 'README.md'),
        help='the README that --update-readme fills')
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
