"""ONNX export of a config's recognizer, run in onnxruntime against PyTorch.

Two exports: a stock MMAction2 VideoMAE config pruned by an
``STAPruningHook`` (r > 0, its checkpoint loaded), and an STAViT config at
r=0 through ``tools/deployment/export_onnx.py``'s ``main``.
"""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmaction.registry import MODELS

from sta_mmaction.apis.export import export_config
from sta_mmaction.deployment import (ExportError, ParityError, check_parity,
                                     onnx_session, run_session)
from sta_mmaction.utils import CheckpointError, file_sha256
from ..conftest import ROOT, save_mmengine_checkpoint

MISSING = [m for m in ('onnx', 'onnxscript', 'onnxruntime')
           if importlib.util.find_spec(m) is None]
needs_deploy = pytest.mark.skipif(
    bool(MISSING), reason=f'{", ".join(MISSING)} not installed (the deploy '
    'extra: pip install -e .[deploy])')

#: A small VideoMAE ViT: 8 frames of 64^2 -> 4 slices of 4 x 4 tokens.
TINY = dict(img_size=64, embed_dims=48, depth=3, num_heads=4, num_frames=8)
PIPELINE = [
    dict(type='SampleFrames', clip_len=8, frame_interval=4, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='CenterCrop', crop_size=64),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]


def stock_config(path, hooks=None):
    """MMAction2's own VideoMAE config, made small, with ``hooks``."""
    path.write_text(
        "_base_ = ['mmaction::recognition/videomae/vit-base-p16_videomae-"
        "k400-pre_16x4x1_kinetics-400.py']\n"
        "custom_imports = dict(imports=['sta_mmaction'], "
        'allow_failed_imports=False)\n'
        f'model = dict(backbone=dict(**{TINY!r}), '
        'cls_head=dict(in_channels=48, num_classes=10))\n'
        f'test_dataloader = dict(dataset=dict(pipeline={PIPELINE!r}))\n'
        f'custom_hooks = {hooks or []!r}\n')
    return Config.fromfile(str(path))


@needs_deploy
def test_hook_route_prunes_exports_and_matches(tmp_path):
    cfg = stock_config(tmp_path / 'stock.py',
                       [dict(type='STAPruningHook', drop_number=4)])
    assert cfg.model.backbone.type == 'VisionTransformer'
    torch.manual_seed(0)
    ckpt = save_mmengine_checkpoint(
        MODELS.build(cfg.model).state_dict(), tmp_path / 'w.pth')
    out = str(tmp_path / 'vit_r4.onnx')
    res = export_config(cfg, out, ckpt, program=str(tmp_path / 'vit.pt2'))
    meta, parity = res['metadata'], res['parity']
    assert meta['backbone'] == 'STAViT' and meta['sta.drop_number'] == 4
    assert meta['sta.strategy'] == 'sta'
    assert meta['sta.pruned_by'] == 'STAPruningHook'
    assert meta['view_shape'] == '[3, 8, 64, 64]'
    assert meta['checkpoint_sha256'] == file_sha256(ckpt)
    assert res['outputs'] == ['scores', 'kept0', 'kept1', 'kept2']
    assert parity['ok'] and parity['max_abs_diff'] < 1e-5
    assert parity['top5_equal'] and parity['kept_equal']
    assert parity['program_max_abs_diff'] < 1e-5
    # the file's own metadata, and its kept tokens against eager STAViT
    import onnx
    props = {p.key: p.value
             for p in onnx.load(out, load_external_data=False)
             .metadata_props}
    assert props['sta.drop_number'] == '4'
    assert props['checkpoint_sha256'] == file_sha256(ckpt)
    assert osp.getsize(tmp_path / 'vit.pt2') > 0
    from sta_mmaction.apis.demo import build_recognizer
    model = build_recognizer(cfg, ckpt)
    clip = torch.randn(5, 3, 8, 64, 64)  # another batch size than traced
    session = onnx_session(out)
    scores, *kept = run_session(session, [clip])
    with torch.no_grad():
        feats, want_kept = model.backbone.forward_pruned(clip)
        want = model.cls_head(feats)
    assert [k.shape[1] for k in kept] == model.backbone.token_counts()[1:]
    for got, ref in zip(kept, want_kept):
        assert torch.equal(torch.from_numpy(got), ref)
    assert torch.allclose(torch.from_numpy(scores), want, atol=1e-5)
    # the check can fail: another model's scores are not these
    other = build_recognizer(cfg, None, seed=1)
    from sta_mmaction.deployment import RecognizerGraph
    graph = RecognizerGraph(other.backbone, None, other.cls_head).eval()
    assert not check_parity(graph, session, [clip])['ok']


@needs_deploy
def test_cli_exports_r0_and_a_mismatch_exits(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'export_onnx', osp.join(ROOT, 'tools', 'deployment', 'export_onnx.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'vit_r0.onnx')
    args = [osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py'),
            '--random-weights', '-o', out, '--cfg-options',
            *[f'model.backbone.{k}={v}' for k, v in TINY.items()],
            'model.cls_head.in_channels=48']
    cfg_view = ['test_dataloader.dataset.pipeline.1.clip_len=8',
                'test_dataloader.dataset.pipeline.4.crop_size=64']
    with pytest.raises(ParityError, match='disagrees with PyTorch'):
        tool.main(args + cfg_view + ['--atol', '-1'])
    session = onnx_session(out)
    assert [o.name for o in session.get_outputs()] == ['scores']
    assert isinstance(session.get_inputs()[0].shape[0], str)  # dynamic
    import onnx
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert props['sta.drop_number'] == '0'
    assert props['checkpoint_sha256'] == 'none'


def test_missing_or_absent_checkpoint_is_refused(tmp_path):
    cfg = stock_config(tmp_path / 'stock.py')
    with pytest.raises(ValueError, match='export a checkpoint'):
        export_config(cfg, str(tmp_path / 'm.onnx'))
    with pytest.raises(CheckpointError, match='does not exist'):
        export_config(cfg, str(tmp_path / 'm.onnx'),
                      str(tmp_path / 'none.pth'))


def test_an_r_the_view_cannot_take_is_refused(tmp_path):
    cfg = stock_config(tmp_path / 'stock.py',
                       [dict(type='STAPruningHook', drop_number=9)])
    with pytest.raises(ValueError, match='drop_number=9'):
        export_config(cfg, str(tmp_path / 'm.onnx'), random_weights=True)


def test_a_clip_dependent_token_count_cannot_export(tmp_path):
    cfg = stock_config(tmp_path / 'stock.py',
                       [dict(type='STAPruningHook', drop_number=0,
                             rlt_threshold=0.1)])
    with pytest.raises(ExportError, match='depends on the data'):
        export_config(cfg, str(tmp_path / 'm.onnx'), random_weights=True)
