"""Train an MMAction2 recognizer (or VideoMAE pre-training), STA on or off.

MMAction2's ``tools/train.py`` on mmengine's Runner, with these additions:
a ``load_from`` checkpoint must fill the whole model (``CheckpointKeysHook``,
as in ``tools/test.py``); the train and val lists are checked as
``tools/test.py`` checks its list and an unreadable video is named; a NaN or
infinite loss stops the run naming the iteration, before a checkpoint of it
is saved; a config without a train loop is refused; ``--launcher pytorch``
also runs on CPU-only
machines (gloo); a bad setting (e.g. a misspelt ``--cfg-options`` key of an
STA backbone) is one line and exit status 1. The logic is
:mod:`sta_mmaction.apis.training`. Training with STA on is
``--cfg-options model.backbone.drop_number=24``: gradients flow through the
kept tokens, the selection itself is not differentiated.
"""
import argparse
import os

import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)

from mmengine.config import Config, DictAction

from sta_mmaction.apis import configure_train, run_cli, run_train
from sta_mmaction.utils import set_unsafe_full_unpickle


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMAction2 train a model, STA pruning on or off')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go; defaults to the config\'s '
        'work_dir, else work_dirs/<config name>')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (mmengine AmpOptimWrapper; CUDA)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not validate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual over the config\'s '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file, e.g. '
        'model.backbone.drop_number=24')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--unsafe-full-unpickle',
        action='store_true',
        help='fully unpickle load_from/resume checkpoints, which can run '
        'code stored in them; only for files you trust')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='also print mmengine\'s environment, config and hook-order '
        'dumps on the console (they are always in the log file)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if args.unsafe_full_unpickle:
        set_unsafe_full_unpickle(True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    configure_train(
        cfg,
        args.config,
        launcher=args.launcher,
        work_dir=args.work_dir,
        amp=args.amp,
        resume=args.resume,
        no_validate=args.no_validate,
        auto_scale_lr=args.auto_scale_lr,
        verbose=args.verbose)
    run_train(cfg)


if __name__ == '__main__':
    run_cli(main)
