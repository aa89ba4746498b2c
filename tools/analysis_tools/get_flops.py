"""GFLOPs per view of a config's backbone over a sweep of drop numbers.

    python tools/analysis_tools/get_flops.py configs/sta_vitl_k400_r64.py \
        --drop-numbers 0 32 48 64
    python tools/analysis_tools/get_flops.py configs/sta_vits_k400_r64.py \
        --strategies sta random tome vidtldr rlt oracle

fvcore traces the backbone on one view (1 x C x T x H x W, as the test
pipeline makes it, or ``--shape``), STA's own matmuls included. One
multiply-add counts as one FLOP, as in the papers. A stock backbone pruned by an
``STAPruningHook`` in ``custom_hooks`` is measured pruned at each r, with the
hook's strategy and seed (see :mod:`sta_mmaction.analysis.sweep`).
``--strategies`` adds a row per strategy, and the change against the oracle
(the same token counts without any scoring) at the same r. With
``model.backbone.rlt_threshold`` the count depends on each clip: the row
says "adaptive" with the least and the most a view can cost, and with
``--videos`` the mean and range over one view of each video.
"""
import argparse
import json
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers modules)
from mmengine.config import Config, DictAction
from mmaction.utils import register_all_modules
from mmaction.registry import MODELS
from mmengine.dataset import pseudo_collate
from sta_mmaction.analysis import build_backbone, flops_sweep, view_shape
from sta_mmaction.analysis.flops import adaptive_gflops
from sta_mmaction.visualization.kept_tokens import load_view
from sta_mmaction.analysis.table import format_table
from sta_mmaction.apis import run_cli
from sta_mmaction.apis.cli import check_output_file


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
    parser.add_argument(
        '--strategies',
        nargs='+',
        help='strategies to measure (default: the config\'s own)')
    parser.add_argument(
        '--videos',
        nargs='+',
        help='videos whose views the adaptive (rlt_threshold) rows count')
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
    if args.shape and (args.shape[0] != 1 or min(args.shape) < 1):
        raise ValueError(
            f'--shape {" ".join(map(str, args.shape))}: give one view, '
            '1 C T H W with positive sizes; GFLOPs are per view, so a batch '
            'of N views would be counted N times as one.')
    if args.json:
        check_output_file(args.json, '--json')
    shape = tuple(args.shape) if args.shape else view_shape(cfg)
    rows = flops_sweep(cfg, args.drop_numbers, shape, args.strategies)
    counts = view_counts(cfg, args.videos) if args.videos else None
    table = []
    for row in rows:
        if row['adaptive']:
            row['adaptive'].update(adaptive_views(row['adaptive'], counts))
        gflops, tokens = cells(row)
        table.append([
            row['strategy'] or 'none', row['drop_number'], gflops,
            'n/a' if row['change'] is None else f'{row["change"]:+.1%}',
            'n/a' if row['vs_oracle'] is None else f'{row["vs_oracle"]:+.2%}',
            tokens, f'{row["params_m"]:.2f}'
        ])
    print(f'{rows[-1]["backbone"]} on one view {shape}, fvcore '
          '(1 multiply-add = 1 FLOP):')
    print(
        format_table(table, [
            'strategy', 'r', 'GFLOPs', 'vs first', 'vs oracle',
            'tokens per point', 'params (M)'
        ]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(config=args.config, shape=shape, rows=rows), f, indent=2)


def view_counts(cfg, videos):
    """Tokens of one view (the test pipeline's first clip and crop) of each
    video, as the config's adaptive backbone keeps them."""
    backbone = build_backbone(cfg)
    if getattr(backbone, 'rlt_threshold', None) is None:
        raise ValueError('--videos counts the views of an adaptive backbone; '
                         'set model.backbone.rlt_threshold.')
    pre = MODELS.build(cfg.model.data_preprocessor)
    counts = []
    for video in videos:
        packed = load_view(cfg, video)[1]
        inputs = pre(pseudo_collate([packed]), False)['inputs']
        counts.append(int(backbone.clip_token_counts(
            inputs.flatten(0, 1)[:1])[0]))
    return counts


def adaptive_views(fit, counts):
    """Per-view tokens and GFLOPs of ``counts`` (nothing without)."""
    if not counts:
        return {}
    return dict(view_tokens=counts,
                view_gflops=adaptive_gflops(fit['fit'], counts))


def cells(row):
    """The GFLOPs and tokens cells of a row, "adaptive" with its range."""
    fit = row['adaptive']
    if not fit:
        return (f'{row["gflops"]:.2f}',
                ' -> '.join(map(str, row['tokens'])) or 'n/a')
    gflops = (f'adaptive: {fit["gflops"][0]:.2f}-{fit["gflops"][1]:.2f}')
    tokens = f'adaptive: {fit["tokens"][0]}-{fit["tokens"][1]}'
    if 'view_tokens' in fit:
        g, n = fit['view_gflops'], fit['view_tokens']
        gflops = (f'adaptive: mean {sum(g) / len(g):.2f}, range '
                  f'{min(g):.2f}-{max(g):.2f} over {len(g)} views')
        tokens = (f'adaptive: mean {sum(n) / len(n):.1f}, range '
                  f'{min(n)}-{max(n)}')
    return gflops, tokens


if __name__ == '__main__':
    run_cli(main)
