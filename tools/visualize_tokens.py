"""Draw which tokens STA keeps, as in the paper's Figure 3.

    python tools/visualize_tokens.py VIDEO CONFIG [CHECKPOINT] [--gif]

One view of VIDEO (the config's test pipeline with 1 clip x 1 center crop)
goes through the config's STA backbone. The PNG, in ``work_dirs/vis/``, has
the sampled frames in columns (the first frame of each temporal slice, or
every frame with ``--all-frames``) and, in rows, the input and then each
prune point with the pruned patches blanked. ``--gif`` adds an animation of
every frame. Works for STAViT and STASwin3D configs, and for a stock config
with ``STAPruningHook`` in its ``custom_hooks``. Without a checkpoint the
weights are random (the config's ``load_from`` is not used unless given as
the checkpoint), which the title says.
"""
import argparse

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
from mmengine.config import DictAction

from sta_mmaction.apis import run_cli
from sta_mmaction.apis.cli import check_output_file
from sta_mmaction.apis.demo import visualize_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Picture of the tokens STA keeps in one video')
    parser.add_argument('video', help='video file')
    parser.add_argument(
        'config',
        help='test config (STA backbone, or stock '
        'with STAPruningHook)')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file or URL; random weights when omitted')
    parser.add_argument(
        '--drop-number',
        type=int,
        help='r to draw; defaults to the config\'s (backbone or hook)')
    parser.add_argument(
        '--out',
        help='PNG path; defaults to work_dirs/vis/<video>_<config>.png')
    parser.add_argument(
        '--gif', action='store_true', help='also write an animated GIF')
    parser.add_argument(
        '--all-frames',
        action='store_true',
        help='one column per sampled frame instead of per temporal slice')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.out:
        check_output_file(args.out, '--out')
    return visualize_config(args.video, args.config, args.checkpoint,
                            args.drop_number, args.out, args.gif,
                            args.all_frames, args.seed, args.cfg_options)


if __name__ == '__main__':
    run_cli(main)
