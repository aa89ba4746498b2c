"""Convert an original VideoMAE checkpoint to an MMAction2 checkpoint.

VideoMAE's own fine-tuned releases (the SSV2 ViTs and ViT-H on Kinetics-400,
which MMAction2 does not republish) use VideoMAE's key names and leave the
fixed position table out. This tool renames the keys, fills the table with
MMAction2's formula, checks every key and shape against the recognizer built
from ``--config``, and writes ``{'meta': ..., 'state_dict': ...}``::

    python tools/model_converters/convert_videomae_checkpoint.py \\
        videomae_vits_ssv2.pth work_dirs/vits_ssv2_mmaction.pth \\
        --config configs/sta_vits_ssv2_r0.py

Without ``--config`` the config is picked from ``configs/`` by the file's
width and class count (``sta_vit{s,b,l,h}_{k400,ssv2}_r0.py``). The
converted file loads strictly into every ``r`` of that row. ``tools/test.py``
also takes the original file directly and converts it in memory.
"""
import argparse
import os.path as osp

import sta_mmaction  # first: patches mmaction, registers modules
from mmengine.config import Config
from mmengine.logging import print_log

from mmaction.registry import MODELS
from mmaction.utils import register_all_modules
from sta_mmaction.apis import run_cli
from sta_mmaction.apis.cli import check_output_file
from sta_mmaction.utils import (check_state_dict, convert_videomae_state_dict,
                                describe_videomae_state, load_checkpoint_file,
                                save_converted)

CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
#: embed_dims -> ViT size letter in the config names.
SIZES = {384: 's', 768: 'b', 1024: 'l', 1280: 'h'}
#: num_classes -> dataset in the config names.
DATASETS = {400: 'k400', 174: 'ssv2'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an original VideoMAE fine-tuned checkpoint to '
        'MMAction2 format, checked against a config')
    parser.add_argument('src', help='original VideoMAE checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the MMAction2 checkpoint')
    parser.add_argument(
        '--config',
        help='config of the model the checkpoint is for; defaults to '
        'configs/sta_vit{s,b,l,h}_{k400,ssv2}_r0.py chosen by the file\'s '
        'embed_dims and class count')
    parser.add_argument(
        '--unsafe-full-unpickle',
        action='store_true',
        help='fully unpickle SRC, which can run code stored in it; only for '
        'files you trust. By default only tensors and the types MMAction2 '
        'and mmengine checkpoints carry are allowed.')
    return parser.parse_args(argv)


def default_config(info):
    """The repository config whose ViT size and dataset match the file."""
    size = SIZES.get(info['embed_dims'])
    data = DATASETS.get(info['num_classes'])
    if size is None or data is None:
        raise ValueError(
            f'Cannot pick a config for a ViT with embed_dims='
            f'{info["embed_dims"]} and {info["num_classes"]} classes (known: '
            f'embed_dims {sorted(SIZES)}, classes {sorted(DATASETS)}). Pass '
            '--config.')
    return osp.join(CONFIG_DIR, f'sta_vit{size}_{data}_r0.py')


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.dst, 'dst', source=args.src)
    register_all_modules(init_default_scope=True)
    checkpoint = load_checkpoint_file(
        args.src,
        map_location='cpu',
        unsafe_full_unpickle=args.unsafe_full_unpickle or None)
    info = describe_videomae_state(checkpoint)
    config = args.config or default_config(info)
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)

    state_dict = convert_videomae_state_dict(checkpoint, model)
    # the checks of tools/test.py too (dtypes, NaN/Inf), so the written file
    # is one that the test run accepts
    check_state_dict(model, state_dict, args.src)
    model.load_state_dict(state_dict, strict=True)

    save_converted(state_dict, args.dst, args.src, config, 'videomae', info)
    print_log(
        f'Converted {args.src} ({info["tensors"]} tensors, ViT embed_dims='
        f'{info["embed_dims"]} x {info["depth"]} blocks, '
        f'{info["num_classes"]} classes) for {config}: {len(state_dict)} '
        f'keys written to {args.dst}; it loads with strict=True.',
        logger='current')


if __name__ == '__main__':
    run_cli(main)
