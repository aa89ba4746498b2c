"""Convert an original Video Swin checkpoint to an MMAction2 checkpoint.

The files of the original Video Swin release (SwinTransformer/
Video-Swin-Transformer v1.0.4), which the paper's Swin rows used, name the
backbone's last norm ``backbone.norm``; MMAction2 1.x names it
``backbone.norm3``. This tool renames it, checks every key, shape and the
stored window indices against the recognizer built from ``--config``, and
writes ``{'meta': ..., 'state_dict': ...}`` (without the optimizer state)::

    python tools/model_converters/convert_swin_checkpoint.py \\
        swin_base_patch244_window877_kinetics400_22k.pth \\
        work_dirs/swinb22k_k400_mmaction.pth \\
        --config configs/sta_swinb22k_k400_r0.py

Without ``--config`` the config is picked from ``configs/`` by the file's
size and class count. ``tools/test.py`` also takes the original file
directly and converts it in memory.
"""
import argparse
import os.path as osp
import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)

from mmengine.config import Config
from mmengine.logging import print_log

from mmaction.registry import MODELS
from mmaction.utils import register_all_modules
from sta_mmaction.apis import run_cli
from sta_mmaction.apis.cli import check_output_file
from sta_mmaction.utils import (describe_swin_state, load_checkpoint_file,
                                prepare_checkpoint, save_converted)

CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
#: (size, num_classes) -> the r = 0 config of the paper's row.
CONFIGS = {
    ('Swin-T', 400): 'sta_swint_k400_r0.py',
    ('Swin-S', 400): 'sta_swins_k400_r0.py',
    ('Swin-B', 400): 'sta_swinb22k_k400_r0.py',
    ('Swin-B', 174): 'sta_swinb_ssv2_r0.py',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an original Video Swin checkpoint to MMAction2 '
        'format, checked against a config')
    parser.add_argument('src', help='original Video Swin checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the MMAction2 checkpoint')
    parser.add_argument(
        '--config',
        help='config of the model the checkpoint is for; defaults to the '
        'configs/sta_swin*_r0.py of the file\'s size and class count')
    parser.add_argument(
        '--unsafe-full-unpickle',
        action='store_true',
        help='fully unpickle SRC, which can run code stored in it; only for '
        'files you trust. By default only tensors and the types MMAction2 '
        'and mmengine checkpoints carry are allowed.')
    return parser.parse_args(argv)


def default_config(info):
    """The repository config whose Swin size and dataset match the file."""
    name = CONFIGS.get((info['size'], info['num_classes']))
    if name is None:
        raise ValueError(
            f'Cannot pick a config for a {info["size"] or "Swin"} with '
            f'{info["num_classes"]} classes (known: '
            f'{", ".join(f"{s} {n}" for s, n in CONFIGS)}). Pass --config.')
    return osp.join(CONFIG_DIR, name)


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.dst, 'dst', source=args.src)
    register_all_modules(init_default_scope=True)
    checkpoint = load_checkpoint_file(
        args.src,
        map_location='cpu',
        unsafe_full_unpickle=args.unsafe_full_unpickle or None)
    info = describe_swin_state(checkpoint)
    config = args.config or default_config(info)
    model = MODELS.build(Config.fromfile(config).model)
    # the same conversion and checks as tools/test.py, so the written file
    # is one that the test run accepts
    prepare_checkpoint(model, checkpoint, args.src)
    state_dict = checkpoint['state_dict']
    model.load_state_dict(state_dict, strict=True)

    save_converted(state_dict, args.dst, args.src, config, 'swin', info)
    print_log(
        f'Converted {args.src} ({info["tensors"]} tensors, '
        f'{info["size"] or "Swin"} embed_dims={info["embed_dims"]}, depths '
        f'{info["depths"]}, {info["num_classes"]} classes) for {config}: '
        f'{len(state_dict)} keys written to {args.dst}; it loads with '
        'strict=True.',
        logger='current')


if __name__ == '__main__':
    run_cli(main)
