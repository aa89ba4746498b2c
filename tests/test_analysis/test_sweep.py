"""Measuring a config at several r, pruned as its test run is pruned.

A stock backbone with an ``STAPruningHook`` in ``custom_hooks`` is measured
pruned at every r (with the hook's strategy and seed); a config that nothing
prunes is measured at r=0 and refuses r>0; tokens follow the view's shape.
"""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmaction.registry import MODELS

from sta_mmaction.analysis import (backbone_report, drop_numbers_of,
                                   flops_sweep, stock_copy)
from sta_mmaction.analysis.flops import adaptive_gflops, count_flops
from sta_mmaction.analysis.speed import build_variants
from sta_mmaction.models import STASwin3D, STAViT, apply_pruning, pruning_of

from ..conftest import ROOT

#: 16 frames of 64^2: 8 slices of 4 x 4 tokens; r <= 8.
VIT = dict(
    type='VisionTransformer',
    img_size=64,
    patch_size=16,
    embed_dims=48,
    depth=6,
    num_heads=4,
    num_frames=16,
    norm_cfg=dict(type='LN', eps=1e-6))
#: 8 x 64^2 clips: 4 slices, stage grids 16^2 ... 2^2; r <= 32.
SWIN = dict(
    type='SwinTransformer3D',
    arch=dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
    window_size=(2, 4, 4),
    pretrained2d=False,
    drop_path_rate=0.)
VIT_VIEW = (1, 3, 16, 64, 64)
SWIN_VIEW = (1, 3, 8, 64, 64)


def config(backbone, hook=None):
    cfg = dict(model=dict(type='Recognizer3D', backbone=backbone))
    if hook is not None:
        cfg['custom_hooks'] = [dict(type='ReportOnly'), hook]
    return Config(cfg)


def sta_gflops(backbone, r, shape, **settings):
    sta = dict(backbone, type={'VisionTransformer': 'STAViT',
                               'SwinTransformer3D': 'STASwin3D'}[
                                   backbone['type']], drop_number=r,
               **settings)
    return backbone_report(MODELS.build(sta), shape)


@pytest.mark.parametrize('backbone, shape, rs', [(VIT, VIT_VIEW, [0, 4, 8]),
                                                 (SWIN, SWIN_VIEW, [0, 16])])
def test_hook_config_is_measured_pruned_at_every_r(backbone, shape, rs):
    """Each row is the STA backbone at that r (today's bug: all read r=0)."""
    cfg = config(backbone, dict(type='STAPruningHook', drop_number=rs[-1]))
    rows = flops_sweep(cfg, rs, shape)
    assert [row['drop_number'] for row in rows] == rs
    for row, r in zip(rows, rs):
        want = sta_gflops(backbone, r, shape)
        assert row['gflops'] == pytest.approx(want['gflops'], rel=1e-9)
        assert row['tokens'] == want['tokens']
    gflops = [row['gflops'] for row in rows]
    assert gflops == sorted(gflops, reverse=True) and gflops[-1] < gflops[0]
    # no r given: the hook's own
    [own] = flops_sweep(cfg, None, shape)
    assert own['drop_number'] == rs[-1]
    assert own['gflops'] == pytest.approx(rows[-1]['gflops'], rel=1e-9)


def test_hook_strategy_and_settings_are_used():
    cfg = config(VIT, dict(type='STAPruningHook', drop_number=4,
                           strategy='tome', prop_attn=False))
    backbone = MODELS.build(copy.deepcopy(cfg.model.backbone))
    apply_pruning(backbone, pruning_of(cfg), 8)
    assert type(backbone) is STAViT
    assert (backbone.drop_number, backbone.strategy,
            backbone.prop_attn) == (8, 'tome', False)
    cfg = config(VIT, dict(type='STAPruningHook', drop_number=4,
                           prop_atn=False))
    with pytest.raises(ValueError, match='did you mean prop_attn'):
        flops_sweep(cfg, [4], VIT_VIEW)


def test_sta_config_sweeps_its_own_backbone():
    cfg = config(dict(VIT, type='STAViT', drop_number=4, strategy='random',
                      seed=2))
    assert drop_numbers_of(cfg) == [4]
    rows = flops_sweep(cfg, [0, 8], VIT_VIEW)
    # 'random' skips STA's similarity matmuls, so its FLOPs are its own
    want = sta_gflops(VIT, 8, VIT_VIEW, strategy='random', seed=2)
    assert rows[1]['gflops'] == pytest.approx(want['gflops'], rel=1e-9)
    assert rows[1]['gflops'] < sta_gflops(VIT, 8, VIT_VIEW)['gflops']


@pytest.mark.parametrize('backbone, shape', [(VIT, VIT_VIEW),
                                             (SWIN, SWIN_VIEW)])
def test_config_nothing_prunes_is_stock_at_zero_only(backbone, shape):
    cfg = config(backbone)
    [row] = flops_sweep(cfg, None, shape)
    assert row['drop_number'] == 0
    assert row['backbone'] == backbone['type']
    assert row['gflops'] == pytest.approx(
        backbone_report(MODELS.build(backbone), shape)['gflops'], rel=1e-9)
    with pytest.raises(ValueError) as err:
        flops_sweep(cfg, [0, 16], shape)
    msg = str(err.value)
    for part in ('[0, 16]', backbone['type'], 'no STAPruningHook',
                 'at r=0', "dict(type='STAPruningHook'"):
        assert part in msg, msg


def test_tokens_follow_the_view_shape():
    """96^2 views of a 64^2 ViT: 6 x 6 tokens per slice, not 4 x 4."""
    cfg = config(dict(VIT, type='STAViT', drop_number=4))
    [row] = flops_sweep(cfg, None, (1, 3, 16, 96, 96))
    assert row['tokens'] == [288, 256, 240, 232]
    [row] = flops_sweep(config(SWIN, dict(type='STAPruningHook',
                                          drop_number=16)), None,
                        (1, 3, 16, 64, 64))
    assert row['tokens'] == STASwin3D(
        **{k: v for k, v in SWIN.items() if k != 'type'},
        drop_number=16).token_counts((16, 64, 64))
    assert row['tokens'][0] == 8 * 16 * 16  # not the 4 slices of 8 frames


def test_stock_copy_runs_the_stock_forward():
    sta = MODELS.build(dict(VIT, type='STAViT', drop_number=4)).eval()
    stock = stock_copy(sta)
    assert type(stock).__name__ == 'VisionTransformer'
    assert type(sta) is STAViT  # the original is left as it is
    ref = MODELS.build(VIT).eval()
    ref.load_state_dict(sta.state_dict())
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.no_grad():
        assert torch.equal(stock(x), ref(x))


# --- the tools, kept thin over the package -----------------------------------


def write_config(path, backbone, hook):
    path.write_text(
        "custom_imports = dict(imports=['sta_mmaction'], "
        'allow_failed_imports=False)\n'
        f'model = dict(type="Recognizer3D", backbone={backbone!r})\n'
        f'custom_hooks = {[hook]!r}\n')
    return str(path)


def test_get_flops_tool_on_a_hook_config(tmp_path):
    cfg = write_config(tmp_path / 'swin_hook.py', SWIN,
                       dict(type='STAPruningHook', drop_number=16))
    out = tmp_path / 'rows.json'
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'analysis_tools', 'get_flops.py'), cfg,
        '--drop-numbers', '0', '16', '--shape', *map(str, SWIN_VIEW),
        '--json',
        str(out)
    ], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert rows[1]['gflops'] < rows[0]['gflops']
    assert rows[1]['tokens'] == sta_gflops(SWIN, 16, SWIN_VIEW)['tokens']
    assert 'STASwin3D on one view' in proc.stdout


def test_benchmark_variants_of_a_hook_config():
    cfg = config(VIT, dict(type='STAPruningHook', drop_number=4))
    variants = build_variants(cfg, [0, 8], True, torch.device('cpu'))
    labels = [label for label, _, _ in variants]
    assert labels == ['STAViT r=0', 'STAViT r=8', 'VisionTransformer (stock)']
    models = [m for _, _, m in variants]
    assert models[1].drop_number == 8
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.no_grad():
        assert torch.equal(models[0](x), models[2](x))  # same weights
    with pytest.raises(ValueError, match='no STAPruningHook'):
        build_variants(config(VIT), [0, 8], False, torch.device('cpu'))


def test_strategies_beside_the_oracle():
    """One row per strategy; the same tokens, each its own selection cost."""
    cfg = config(dict(VIT, type='STAViT', drop_number=4))
    rows = flops_sweep(cfg, [4], VIT_VIEW,
                       ['oracle', 'sta', 'random', 'rlt', 'tome', 'vidtldr'])
    by = {row['strategy']: row for row in rows}
    assert len({tuple(row['tokens']) for row in rows}) == 1
    assert by['oracle']['vs_oracle'] == 0
    assert by['random']['vs_oracle'] == by['rlt']['vs_oracle'] == 0
    for name in ('sta', 'tome', 'vidtldr'):  # similarity matmuls
        assert by[name]['vs_oracle'] > 0
    # vid-TLDR matches the C-wide tokens, ToMe the C/h-wide keys
    assert by['vidtldr']['gflops'] > by['tome']['gflops']


def test_adaptive_row_is_a_range():
    cfg = config(dict(VIT, type='STAViT', rlt_threshold=0.1))
    [row] = flops_sweep(cfg, None, VIT_VIEW)
    assert row['gflops'] is row['change'] is row['tokens'] is None
    fit = row['adaptive']
    assert fit['tokens'] == [16, 128]
    assert fit['gflops'][0] < fit['gflops'][1]
    # exact: a view that keeps 64 tokens costs what the quadratic says
    backbone = MODELS.build(cfg.model.backbone).eval()
    x = torch.randn(VIT_VIEW)
    x[:, :, 6:] = x[:, :, 5:6]  # tubelets 4-7 still
    assert int(backbone.clip_token_counts(x)[0]) == 64
    with torch.no_grad():
        flops = count_flops(backbone, (x, ))['flops']
    assert adaptive_gflops(fit['fit'], [64])[0] == pytest.approx(
        flops / 1e9, rel=1e-9)
