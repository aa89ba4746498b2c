"""Test (and evaluate) an MMAction2 recognizer, STA-pruned or not.

MMAction2's ``tools/test.py`` with three additions: the checkpoint may be
omitted when the config names one (``load_from``); the run reports the
backbone's GFLOPs per view and its token count after each prune point beside
the accuracy; and a checkpoint that lacks backbone weights stops the run
instead of silently evaluating random weights.
"""
import argparse
import os
import os.path as osp
import sys

try:
    import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import sta_mmaction  # noqa: F401

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmaction.registry import RUNNERS
from sta_mmaction.utils import set_unsafe_full_unpickle


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMAction2 test (and eval) a model, with STA reports')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file or URL; defaults to the config\'s load_from')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file, e.g. '
        'model.backbone.drop_number=48')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualization images will be saved.')
    parser.add_argument(
        '--show',
        action='store_true',
        help='whether to display the prediction results in a window.')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='visualize per interval samples.')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='display time of every window. (second)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--unsafe-full-unpickle',
        action='store_true',
        help='fully unpickle the checkpoint, which can run code stored in '
        'it; only for files you trust. By default only the types MMAction2 '
        'and mmengine checkpoints carry are allowed.')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Merge CLI arguments to config."""
    if args.show or (args.show_dir is not None):
        if 'visualization' not in cfg.default_hooks:
            raise ValueError(
                '--show/--show-dir need a VisualizationHook: set '
                'default_hooks.visualization=dict(type="VisualizationHook").')
        cfg.default_hooks.visualization.enable = True
        cfg.default_hooks.visualization.show = args.show
        cfg.default_hooks.visualization.wait_time = args.wait_time
        cfg.default_hooks.visualization.out_dir = args.show_dir
        cfg.default_hooks.visualization.interval = args.interval

    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--dump={args.dump!r}: the dump file must end '
                             'with .pkl or .pickle.')
        dump_metric = dict(type='DumpResults', out_file_path=args.dump)
        if isinstance(cfg.test_evaluator, (list, tuple)):
            cfg.test_evaluator = list(cfg.test_evaluator)
            cfg.test_evaluator.append(dump_metric)
        else:
            cfg.test_evaluator = [cfg.test_evaluator, dump_metric]

    hooks = list(cfg.get('custom_hooks', []))
    have = {h.get('type') for h in hooks}
    for name in ('STAReportHook', 'CheckpointKeysHook'):
        if name not in have:
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks
    return cfg


def main():
    args = parse_args()
    if args.unsafe_full_unpickle:
        set_unsafe_full_unpickle(True)

    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    checkpoint = args.checkpoint or cfg.get('load_from')
    if not checkpoint:
        raise ValueError(
            f'No checkpoint: {args.config} sets no load_from and none was '
            'given. Pass one: python tools/test.py CONFIG CHECKPOINT.')
    cfg.load_from = checkpoint

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.test()


if __name__ == '__main__':
    main()
