"""Test (and evaluate) an MMAction2 recognizer, STA-pruned or not.

MMAction2's ``tools/test.py`` with these additions (see
:mod:`sta_mmaction.apis.testing`): the checkpoint may be omitted when the
config names one; it must fill every tensor of the model; the annotation
list is validated; the backbone's GFLOPs per view, its tokens after each
prune point and what produced the numbers (config, checkpoint and its
SHA-256, r, strategy, views) are reported beside the accuracy; unreadable
videos stop the run naming the file, or are skipped and listed;
``--launcher pytorch`` also runs on CPU-only machines (gloo); ``--quick``
tests 1 clip x 1 centre crop per video; ``--fused-attention``, ``--amp
{fp16,bf16}`` and ``--compile`` run the fast paths; ``--drop-numbers`` (and
``--strategies``) sweep r on the same data with one model load
(:mod:`sta_mmaction.apis.sweep`).
"""
import argparse
import os

import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)

from mmengine.config import DictAction

from sta_mmaction.apis import configure_test, run_cli, run_test
from sta_mmaction.apis.sweep import format_sweep, run_sweep, sweep_work_dir
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
        help='where logs and the metrics JSON go; defaults to '
        'work_dirs/<config name with the r that runs>')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump predictions, each with its video\'s file name and index, '
        'to a pickle file for offline evaluation')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file, e.g. '
        'model.backbone.drop_number=48')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='1 clip x 1 centre crop per video instead of the config\'s '
        'views (e.g. 5 x 3), for a first number on a CPU; the metrics JSON '
        'records protocol "quick"')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='accept a checkpoint that leaves model tensors at random init '
        '(e.g. a backbone-only file); they are listed in the metrics JSON '
        '(random_init_keys). By default every tensor must be filled.')
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
    parser.add_argument(
        '--fused-attention',
        action='store_true',
        help='attention through torch scaled_dot_product_attention in the '
        'STA backbone (or STAPruningHook); outputs equal the explicit path '
        'to float rounding')
    parser.add_argument(
        '--amp',
        choices=['fp16', 'bf16'],
        help='test under torch.autocast with this dtype (bf16 on CPU or '
        'CUDA, fp16 on CUDA only); scores are made float32 for the metrics')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the backbone before the first forward')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='also print mmengine\'s environment, config and hook-order '
        'dumps on the console (they are always in the log file)')
    parser.add_argument(
        '--drop-numbers',
        type=int,
        nargs='+',
        help='sweep: test every r given (and every --strategies) on the same '
        'data with one model load; prints a table (r, strategy, GFLOPs, '
        'tokens, top-1, top-5, clips/s) and writes sweep.json and sweep.png '
        '(top-1 against GFLOPs) to the work dir (default '
        'work_dirs/<config>_sweep)')
    parser.add_argument(
        '--strategies',
        nargs='+',
        help='sweep these strategies (e.g. sta random); defaults to the '
        'config\'s')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if args.dump and (args.drop_numbers or args.strategies):
        raise ValueError(
            f'--dump {args.dump} with --drop-numbers/--strategies: each '
            'variant would overwrite the file, leaving the last one\'s '
            'predictions; dump one r at a time (--cfg-options '
            'model.backbone.drop_number=R).')
    if args.unsafe_full_unpickle:
        set_unsafe_full_unpickle(True)
    cfg = configure_test(
        args.config,
        args.checkpoint,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        launcher=args.launcher,
        dump=args.dump,
        skip_corrupt_videos=args.skip_corrupt_videos,
        allow_partial_load=args.allow_partial_load,
        quick=args.quick,
        show=args.show,
        show_dir=args.show_dir,
        interval=args.interval,
        wait_time=args.wait_time,
        fused_attention=args.fused_attention,
        amp=args.amp,
        compile=args.compile,
        verbose=args.verbose)
    if args.drop_numbers or args.strategies:
        if args.work_dir is None:
            cfg.work_dir = sweep_work_dir(cfg.work_dir)
        summary = run_sweep(cfg, args.drop_numbers, args.strategies)
        if 'json' in summary:  # the main rank's
            print(format_sweep(summary))
        return summary
    return run_test(cfg)


if __name__ == '__main__':
    run_cli(main)
