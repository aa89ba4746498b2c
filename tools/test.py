"""Test (and evaluate) an MMAction2 recognizer, STA-pruned or not.

MMAction2's ``tools/test.py`` with these additions: the checkpoint may be
omitted when the config names one (``load_from``); the run reports the
backbone's GFLOPs per view and its token count after each prune point beside
the accuracy; a checkpoint that lacks backbone weights stops the run
instead of silently evaluating random weights; a video that cannot be read
stops the run naming the file, or with ``--skip-corrupt-videos`` is counted
and listed instead; ``--launcher pytorch`` also runs on CPU-only machines
(gloo backend); and only rank 0 writes the test metrics JSON.
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
from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook
from mmengine.runner import Runner

from mmaction.registry import RUNNERS
from sta_mmaction.engine import add_test_hooks
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
    parser.add_argument(
        '--skip-corrupt-videos',
        action='store_true',
        help='skip videos that cannot be opened or decoded instead of '
        'stopping; the metrics then report num_evaluated, num_skipped and '
        'skipped_videos, and the list is written to '
        '<work_dir>/skipped_videos.txt.')
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

    add_test_hooks(cfg)
    return cfg


def wire_video_checks(cfg, skip_corrupt):
    """Name unreadable videos in errors; with ``skip_corrupt``, count them.

    A ``VideoDataset`` becomes a ``SafeVideoDataset``, which is the same
    dataset except that a decode failure names the file. With
    ``skip_corrupt`` such videos are skipped, and the evaluator is wrapped in
    ``SkippedVideosMetric`` so that they are left out of the metrics, counted
    and listed in ``<work_dir>/skipped_videos.txt``.
    """
    dataset = cfg.test_dataloader.dataset
    if dataset.get('type') == 'VideoDataset':
        dataset.type = 'SafeVideoDataset'
    if not skip_corrupt:
        return cfg
    if dataset.get('type') != 'SafeVideoDataset':
        raise ValueError(
            '--skip-corrupt-videos needs test_dataloader.dataset.type='
            f'VideoDataset or SafeVideoDataset, got {dataset.get("type")!r}.')
    dataset.skip_corrupt = True
    cfg.test_evaluator = dict(
        type='SkippedVideosMetric',
        wrapped=cfg.test_evaluator,
        out_file=osp.join(cfg.work_dir, 'skipped_videos.txt'))
    return cfg


def init_cpu_dist(cfg):
    """Start the process group for ``--launcher pytorch`` without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device``, and its
    default model wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on
    CPU-only torch. The group is started here, so the Runner finds it and
    goes on, and the wrapper is told the model lives on the CPU.
    """
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() or dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    if backend != 'gloo':
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} needs CUDA, which this '
            'machine lacks; on CPU use --cfg-options '
            'env_cfg.dist_cfg.backend=gloo.')
    dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False)


class MainRankJsonLoggerHook(LoggerHook):
    """``LoggerHook`` whose test metrics JSON is written by rank 0 only.

    mmengine 0.10.7 dumps it on every rank, to the same file: the ranks
    overwrite one another (the other ranks' copy lacks what rank-0-only
    hooks add) or interleave into invalid JSON.
    """

    def after_test_epoch(self, runner, metrics=None) -> None:
        if is_main_process():
            return super().after_test_epoch(runner, metrics)
        _, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)


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
    cfg = wire_video_checks(cfg, args.skip_corrupt_videos)
    if args.launcher == 'pytorch':
        init_cpu_dist(cfg)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    for hook in runner.hooks:
        if type(hook) is LoggerHook:  # swap the class, keep its settings
            hook.__class__ = MainRankJsonLoggerHook
    runner.test()


if __name__ == '__main__':
    main()
