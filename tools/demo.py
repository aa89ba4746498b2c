"""The main job on an embedded default: STA at r=0 and pruned, side by side.

    python tools/demo.py                      # generated clips, random weights
    python tools/demo.py --checkpoint CKPT --data-root DIR --ann-file FILE
    python tools/demo.py --checkpoint CKPT --video my.mp4 --label 6

With no arguments it needs nothing downloaded: it writes a few generated
clips (3 classes of a moving object, :mod:`sta_mmaction.synthetic`) in
Kinetics-400 format, saves random ViT-S weights the way mmengine saves a
checkpoint, and runs MMAction2's standard test loop (mmengine Runner,
VideoDataset, decord, AccMetric) with STAViT at r=0 and at r=64. It then
times both backbones on one view, interleaved, prints GFLOPs per view,
tokens kept, measured speed-up and, with a checkpoint, the accuracy side by
side, and draws a kept-token picture (:func:`sta_mmaction.apis.demo.run_demo`).
The views are 1 clip x 1 center crop of 16 x 224 x 224 per video, so it
takes about 150 s of CPU time (2 threads; README); ``--full-protocol`` uses
the config's own (5 clips x 3 crops).
"""
import argparse
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
from mmengine.config import DictAction

from sta_mmaction.analysis.speed import setup_cpu
from sta_mmaction.apis import run_cli
from sta_mmaction.apis.cli import check_output_dir
from sta_mmaction.apis.demo import format_summary, run_demo
from sta_mmaction.synthetic import DEMO_CLASSES

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='STA demo: r=0 vs pruned, accuracy, GFLOPs, speed, '
        'kept tokens')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='STA test config (default: ViT-S, Kinetics-400)')
    parser.add_argument(
        '--drop-number',
        type=int,
        default=64,
        help='the pruned r, compared with r=0 (default 64)')
    parser.add_argument(
        '--checkpoint',
        help='weights (file or URL); without one the weights are RANDOM')
    data = parser.add_mutually_exclusive_group()
    data.add_argument('--video', help='one video of your own')
    data.add_argument(
        '--data-root', help='folder of K400-format videos (with --ann-file)')
    parser.add_argument(
        '--ann-file', help='K400 annotation file (<video> <label> lines)')
    parser.add_argument(
        '--label',
        type=int,
        help='class index of --video, for its accuracy (required with '
        '--video; demo/demo.py names the predicted classes instead)')
    parser.add_argument(
        '--num-clips-per-class',
        type=int,
        default=2,
        help=f'generated clips per class ({len(DEMO_CLASSES)} classes; '
        'default 2)')
    parser.add_argument(
        '--full-protocol',
        action='store_true',
        help='use the config\'s views per video (5 clips x 3 crops for '
        'VideoMAE) instead of 1 clip x 1 center crop')
    parser.add_argument(
        '--repeats', type=int, default=3,
        help="timed forwards per r (each after the Timer's warm-up)")
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'))
    parser.add_argument(
        '--gif', action='store_true', help='also write the picture as a GIF')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='show mmengine\'s full INFO logs of the test runs')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    args = parser.parse_args(argv)
    if bool(args.data_root) != bool(args.ann_file):
        parser.error('--data-root and --ann-file go together')
    if bool(args.video) != (args.label is not None):
        parser.error('--video and --label go together: the accuracy needs '
                     'the class index of the video (to see its predicted '
                     'class names, run demo/demo.py)')
    return args


def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.work_dir, '--work-dir')
    setup_cpu(args.threads)
    summary = run_demo(
        args.config,
        args.drop_number,
        args.checkpoint,
        args.work_dir,
        args.full_protocol,
        args.repeats,
        args.gif,
        args.verbose,
        args.cfg_options,
        video=args.video,
        label=args.label,
        data_root=args.data_root,
        ann_file=args.ann_file,
        num_clips_per_class=args.num_clips_per_class)
    print(format_summary(summary))
    return summary


if __name__ == '__main__':
    run_cli(main)
