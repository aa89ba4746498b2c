"""GFLOPs per view of a config's backbone over a sweep of drop numbers.

    python tools/analysis_tools/get_flops.py configs/sta_vitl_k400_r64.py \
        --drop-numbers 0 32 48 64

fvcore traces the backbone on one view (1 x C x T x H x W, taken from the
test pipeline or ``--shape``), STA's own matmuls included. One multiply-add
counts as one FLOP, as in the papers. A stock backbone pruned by an
``STAPruningHook`` in ``custom_hooks`` is measured pruned at each r, with the
hook's strategy and seed (see :mod:`sta_mmaction.analysis.sweep`).
"""
import argparse
import json
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
from mmengine.config import Config, DictAction
from mmaction.utils import register_all_modules
from sta_mmaction.analysis import flops_sweep, view_shape
from sta_mmaction.analysis.table import format_table
from sta_mmaction.apis import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GFLOPs of a backbone per view, over drop numbers')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--drop-numbers',
        type=int,
        nargs='+',
        help='drop numbers r to sweep; defaults to the config\'s own')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=5,
        metavar=('N', 'C', 'T', 'H', 'W'),
        help='view shape; defaults to the test pipeline\'s')
    parser.add_argument('--json', help='also write the table to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.depth=6')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shape = tuple(args.shape) if args.shape else view_shape(cfg)
    rows = flops_sweep(cfg, args.drop_numbers, shape)
    table = [[
        row['drop_number'], f'{row["gflops"]:.2f}', f'{row["change"]:+.1%}',
        ' -> '.join(map(str, row['tokens'])) or 'n/a', f'{row["params_m"]:.2f}'
    ] for row in rows]
    print(f'{rows[-1]["backbone"]} on one view {shape}, fvcore '
          '(1 multiply-add = 1 FLOP):')
    print(
        format_table(
            table,
            ['r', 'GFLOPs', 'vs first', 'tokens per point', 'params (M)']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(config=args.config, shape=shape, rows=rows), f, indent=2)


if __name__ == '__main__':
    run_cli(main)
