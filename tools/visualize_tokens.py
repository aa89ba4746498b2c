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
import logging
import os.path as osp
import sys

try:
    import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import sta_mmaction  # noqa: F401

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmaction.utils import register_all_modules

from sta_mmaction.demo import build_recognizer
from sta_mmaction.engine import convert_backbone
from sta_mmaction.visualization import visualize_video


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


def pruning_hook(cfg):
    """The config's STAPruningHook settings, else an empty dict."""
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'STAPruningHook':
            return hook
    return {}


def build_pruned_model(cfg, checkpoint=None, drop_number=None, seed=0):
    """The config's recognizer, weights loaded, its backbone STA-pruned.

    ``r`` comes from ``drop_number``, else the config's
    ``STAPruningHook``, else the backbone; ``strategy``, ``seed`` and the
    other STA settings from the hook, else the backbone's own.
    """
    model = build_recognizer(cfg, checkpoint, seed)
    settings = {k: v for k, v in pruning_hook(cfg).items() if k != 'type'}
    hook_r = settings.pop('drop_number', None)
    strategy, hook_seed = settings.pop('strategy', None), settings.pop(
        'seed', None)
    r = drop_number if drop_number is not None else hook_r
    if r is None:
        r = getattr(model.backbone, 'drop_number', 0)
    convert_backbone(model.backbone, r, strategy, hook_seed, **settings)
    return model.eval()


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_pruned_model(cfg, args.checkpoint, args.drop_number,
                               args.seed)
    weights = (f'weights {osp.basename(args.checkpoint)}'
               if args.checkpoint else 'RANDOM WEIGHTS (no checkpoint given)')
    if not args.checkpoint:
        print_log(
            'No checkpoint given: the model has random weights, so the '
            'picture shows what STA keeps for an untrained network.',
            logger='current',
            level=logging.WARNING)
    stem = (f'{osp.splitext(osp.basename(args.video))[0]}_'
            f'{osp.splitext(osp.basename(args.config))[0]}')
    out = args.out or osp.join('work_dirs', 'vis', f'{stem}.png')
    gif = osp.splitext(out)[0] + '.gif' if args.gif else None
    return visualize_video(
        model,
        cfg,
        args.video,
        out,
        gif,
        title=f'{osp.basename(args.config)}, {weights}',
        all_frames=args.all_frames)


if __name__ == '__main__':
    main()
