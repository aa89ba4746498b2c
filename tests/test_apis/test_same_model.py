"""A config with an STAPruningHook gives every tool the same model.

tools/test.py (configure_test + run_test), get_flops.py (flops_sweep),
benchmark.py (build_variants), the demo (run_demo) and visualize_tokens.py
(visualize_config) each build the config's model their own way; all of them
must run the backbone class, r and strategy that the hook sets.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from sta_mmaction.analysis import flops_sweep
from sta_mmaction.analysis.speed import build_variants
from sta_mmaction.apis import configure_test, run_test
from sta_mmaction.apis.demo import (run_demo, save_random_checkpoint,
                                    visualize_config)
from sta_mmaction.models import pruning_of
from sta_mmaction.synthetic import make_k400_set

#: A stock MMAction2 VideoMAE config, narrowed, pruned by the hook with a
#: strategy and seed of its own (the backbone has neither).
HOOK_CONFIG = """
_base_ = ['mmaction::recognition/videomae/'
          'vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py']
custom_imports = dict(imports=['sta_mmaction'], allow_failed_imports=False)
model = dict(backbone=dict(embed_dims=48, depth=3, num_heads=4),
             cls_head=dict(in_channels=48, num_classes=400))
custom_hooks = [dict(type='STAPruningHook', drop_number=48,
                     strategy='random', seed=3)]
"""
WANT = ('STAViT', 48, 'random')
#: Tokens of 16 x 224^2 (8 slices x 196) at r=48.
TOKENS = [1568, 1184, 992, 896]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('same_model')
    config = root / 'stock_hook_r48.py'
    config.write_text(HOOK_CONFIG)
    data = make_k400_set(str(root / 'data'), 1, classes=('square', ),
                         num_frames=64, side=240)
    cfg = Config.fromfile(str(config))
    ckpt = save_random_checkpoint(cfg, str(root / 'random.pth'))
    return dict(root=root, config=str(config), data=data, cfg=cfg, ckpt=ckpt)


def test_pruning_of_reads_the_hook(setup):
    pruning = pruning_of(setup['cfg'])
    assert (pruning.backbone.__name__, pruning.drop_number,
            pruning.strategy) == WANT
    assert pruning.settings == dict(strategy='random', seed=3)
    assert pruning.hook


def test_every_tool_runs_the_hooks_model(setup):
    data, root = setup['data'], setup['root']
    cfg = configure_test(
        setup['config'],
        setup['ckpt'],
        work_dir=str(root / 'test'),
        quick=True,
        cfg_options={
            'test_dataloader.num_workers': 0,
            'test_dataloader.dataset.ann_file': data['ann_file'],
            'test_dataloader.dataset.data_prefix': dict(
                video=data['video_root']),
        })
    metrics = run_test(cfg)
    seen = {
        'tools/test.py': (metrics['backbone'], metrics['drop_number'],
                          metrics['strategy'], metrics['tokens'])
    }

    [row] = flops_sweep(setup['cfg'], None, (1, 3, 16, 224, 224))
    seen['get_flops.py'] = (row['backbone'], row['drop_number'],
                            row['strategy'], row['tokens'])

    variants = build_variants(setup['cfg'], None, False, torch.device('cpu'))
    [(_, r, model)] = variants
    seen['benchmark.py'] = (type(model).__name__, model.drop_number,
                            model.strategy, model.token_counts())

    video = osp.join(data['video_root'], data['videos'][0][0])
    picture = visualize_config(
        video, setup['config'], setup['ckpt'], out=str(root / 'vis.png'))
    seen['visualize_tokens.py'] = (picture['backbone'], picture['drop_number'],
                                   picture['strategy'],
                                   [TOKENS[0]] +
                                   [c['kept'] for c in picture['counts']])

    summary = run_demo(
        setup['config'],
        checkpoint=setup['ckpt'],
        work_dir=str(root / 'demo'),
        repeats=1,
        data_root=data['video_root'],
        ann_file=data['ann_file'])
    pruned = summary['rows'][1]
    seen['demo'] = (summary['backbone'], pruned['drop_number'],
                    summary['strategy'], pruned['tokens'])

    for tool, got in seen.items():
        assert got == WANT + (TOKENS, ), tool


def test_two_pruning_hooks_are_refused(setup):
    cfg = Config.fromfile(setup['config'])
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='STAPruningHook', drop_number=32)
    ]
    with pytest.raises(ValueError, match='2 STAPruningHook entries'):
        pruning_of(cfg)
