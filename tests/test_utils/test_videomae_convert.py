"""Original VideoMAE checkpoints: layout detection, conversion, refusals.

A random recognizer's weights are written in VideoMAE's own layout (renamed
keys, no position table, wrapped the ways VideoMAE and DeepSpeed save them),
converted back, loaded strictly and compared bit for bit.
"""
import argparse
import fractions
import glob
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint, \
    _load_checkpoint_to_model

from sta_mmaction.engine import CheckpointKeysHook
from sta_mmaction.utils import (UnsafeCheckpointError,
                                convert_videomae_state_dict,
                                describe_videomae_state, is_original_videomae,
                                load_checkpoint_file, set_unsafe_full_unpickle)

from ..conftest import ROOT, save_mmengine_checkpoint
from ..test_engine.test_checkpoint_hook import fake_runner

# 16 frames of 32x32: 8 slices of 2x2 = 32 tokens.
CLIP = dict(img_size=32, patch_size=16, num_frames=16)
# ViT-S width and heads (head_dim 64), fewer blocks.
VIT_S = dict(embed_dims=384, depth=3, num_heads=6, **CLIP)
# ViT-H's head_dim 80 and layer scale, at a small width.
VIT_H_LIKE = dict(
    embed_dims=160, depth=3, num_heads=2, init_values=0.1, **CLIP)
TOOL = osp.join(ROOT, 'tools', 'model_converters',
                'convert_videomae_checkpoint.py')


def recognizer(backbone, num_classes=7, drop_number=0, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(
                type='STAViT',
                drop_number=drop_number,
                norm_cfg=dict(type='LN', eps=1e-6),
                **backbone),
            cls_head=dict(
                type='TimeSformerHead',
                num_classes=num_classes,
                in_channels=backbone['embed_dims'],
                average_clips='prob'))).eval()
    # Random, not default-initialised, norms and layer scales too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or 'gamma' in name:
                p.normal_()
    return model


def to_original(state_dict):
    """A recognizer state dict in VideoMAE's ``modeling_finetune`` layout."""
    renames = [('patch_embed.projection.', 'patch_embed.proj.'),
               ('mlp.layers.0.0.', 'mlp.fc1.'), ('mlp.layers.1.', 'mlp.fc2.')]
    out = {}
    for key, value in state_dict.items():
        if key == 'backbone.pos_embed':
            continue  # VideoMAE does not store its fixed table
        if key.startswith('cls_head.fc_cls.'):
            out['head.' + key.rsplit('.', 1)[1]] = value.clone()
            continue
        assert key.startswith('backbone.'), key
        key = key[len('backbone.'):]
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value.clone()
    return out


def wrap(state, how):
    """The file layouts VideoMAE's tools write."""
    if how == 'raw':
        return state
    if how == 'module.prefix':  # a DDP model saved as is
        return {'module.' + k: v for k, v in state.items()}
    # 'model': VideoMAE's save_model; 'module': DeepSpeed's model states.
    return {how: state, 'epoch': 29, 'ds_version': '0.5.8'}


def clip(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 2, 3, 16, 32, 32, generator=gen)  # (N, views, ...)


def features(model, x):
    with torch.no_grad():
        return model.extract_feat(x)[0]


def videomae_table(n, d):
    """VideoMAE's own sine-cosine table, written out from its formula."""
    table = torch.tensor(
        [[p / math.pow(10000, 2 * (j // 2) / d) for j in range(d)]
         for p in range(n)],
        dtype=torch.float64)
    table[:, 0::2] = table[:, 0::2].sin()
    table[:, 1::2] = table[:, 1::2].cos()
    return table.float().unsqueeze(0)


@pytest.mark.parametrize('backbone, how, r', [
    (VIT_S, 'module', 0),
    (VIT_S, 'model', 2),
    (VIT_S, 'raw', 0),
    (VIT_H_LIKE, 'module.prefix', 0),
    (VIT_H_LIKE, 'module', 2),
])
def test_roundtrip_is_exact(backbone, how, r, tmp_path):
    source = recognizer(backbone, drop_number=r, seed=0)
    path = tmp_path / 'original.pth'
    torch.save(wrap(to_original(source.state_dict()), how), path)

    checkpoint = load_checkpoint_file(path)  # safe (weights-only) load
    assert is_original_videomae(checkpoint)
    target = recognizer(backbone, drop_number=r, seed=1)
    state = convert_videomae_state_dict(checkpoint, target)
    assert list(state) == list(target.state_dict())
    target.load_state_dict(state, strict=True)

    x = clip()
    assert torch.equal(features(source, x), features(target, x))
    with torch.no_grad():
        assert torch.equal(
            source.cls_head(features(source, x)),
            target.cls_head(features(target, x)))


def test_layer_scale_and_head_dim_80_are_kept():
    source = recognizer(VIT_H_LIKE)
    assert source.backbone.blocks[0].attn.qkv.weight.shape == (480, 160)
    original = to_original(source.state_dict())
    assert 'blocks.2.gamma_2' in original
    info = describe_videomae_state({'module': original})
    assert info == dict(
        wrapper='module',
        tensors=len(original),
        embed_dims=160,
        depth=3,
        num_classes=7,
        layer_scale=True,
        learnable_pos_embed=False)
    state = convert_videomae_state_dict(original, recognizer(VIT_H_LIKE, 7))
    for i in range(3):
        for g in ('gamma_1', 'gamma_2'):
            assert torch.equal(state[f'backbone.blocks.{i}.{g}'],
                               original[f'blocks.{i}.{g}'])


def test_position_table_is_videomae_formula():
    """The filled buffer is MMAction2's formula, equal to VideoMAE's."""
    target = recognizer(VIT_S)
    state = convert_videomae_state_dict(
        to_original(target.state_dict()), target)
    table = state['backbone.pos_embed']
    assert table.shape == (1, 32, 384)
    torch.testing.assert_close(
        table, videomae_table(32, 384), atol=1e-6, rtol=0)


def test_learnable_position_table_is_copied():
    backbone = dict(VIT_S, use_learnable_pos_emb=True)
    source = recognizer(backbone)
    original = to_original(source.state_dict())
    original['pos_embed'] = source.backbone.pos_embed.detach().clone()
    target = recognizer(backbone, seed=1)
    target.load_state_dict(
        convert_videomae_state_dict(original, target), strict=True)
    assert torch.equal(target.backbone.pos_embed, source.backbone.pos_embed)
    del original['pos_embed']
    with pytest.raises(ValueError, match='use_learnable_pos_emb'):
        convert_videomae_state_dict(original, target)


def test_target_may_be_a_state_dict():
    target = recognizer(VIT_S)
    original = to_original(target.state_dict())
    state = convert_videomae_state_dict(original, target.state_dict())
    assert set(state) == set(target.state_dict())


def test_mmaction_and_pretraining_files_are_not_original():
    model = recognizer(VIT_S)
    assert not is_original_videomae({'state_dict': model.state_dict()})
    assert not is_original_videomae(model.state_dict())
    pretrain = {
        'model': {
            'encoder.patch_embed.proj.weight': torch.zeros(384, 3, 2, 16, 16)
        }
    }
    assert not is_original_videomae(pretrain)
    with pytest.raises(ValueError, match='pre-training checkpoint'):
        convert_videomae_state_dict(pretrain, model)
    with pytest.raises(ValueError, match='MMAction2 checkpoint already'):
        convert_videomae_state_dict({'state_dict': model.state_dict()}, model)


@pytest.mark.parametrize('junk', [
    [1, 2, 3],
    'weights',
    {
        'foo': torch.zeros(3)
    },
    {
        'model': {
            'blocks.0.norm1.weight': torch.zeros(3)
        }
    },
])
def test_junk_is_refused(junk):
    assert not is_original_videomae(junk)
    with pytest.raises(ValueError, match='Not an original VideoMAE'):
        convert_videomae_state_dict(junk, recognizer(VIT_S))


def test_wrong_class_count_names_both_numbers():
    original = to_original(recognizer(VIT_S, num_classes=400).state_dict())
    with pytest.raises(ValueError) as err:
        convert_videomae_state_dict(original, recognizer(VIT_S, 174))
    msg = str(err.value)
    assert 'the file classifies 400 classes but the model has 174' in msg
    assert ('cls_head.fc_cls.weight: file (400, 384) vs model (174, 384)'
            in msg)


def test_wrong_size_names_keys_and_sizes():
    original = to_original(recognizer(VIT_H_LIKE).state_dict())
    with pytest.raises(ValueError) as err:
        convert_videomae_state_dict(original, recognizer(VIT_S))
    msg = str(err.value)
    assert 'wrong shape' in msg
    assert ('backbone.patch_embed.projection.weight: file (160, 3, 2, 16, '
            '16) vs model (384, 3, 2, 16, 16)') in msg
    assert 'embed_dims=160 and 3 blocks, the model has embed_dims=384' in msg
    assert '(+' in msg  # long lists are cut, with the count left
    # gamma_1/gamma_2 are in the file but not in an init_values=0 model
    assert 'unexpected' in msg and 'blocks.0.gamma_1' in msg
    assert 'init_values to a float > 0' in msg


def test_missing_and_unexpected_keys_are_listed():
    original = to_original(recognizer(VIT_S).state_dict())
    del original['blocks.1.attn.qkv.weight']
    del original['fc_norm.bias']
    original['blocks.0.attn.qkv.bias'] = torch.zeros(1152)
    original['cls_token'] = torch.zeros(1, 1, 384)
    with pytest.raises(ValueError) as err:
        convert_videomae_state_dict(original, recognizer(VIT_S))
    msg = str(err.value)
    assert ('missing (2 of the model\'s 46 keys): '
            'backbone.blocks.1.attn.qkv.weight, backbone.fc_norm.bias') in msg
    assert 'blocks.0.attn.qkv.bias' in msg and 'cls_token' in msg


def test_depth_mismatch_is_refused():
    original = to_original(recognizer(dict(VIT_S, depth=4)).state_dict())
    with pytest.raises(
            ValueError,
            match='4 blocks, the model has '
            'embed_dims=384 and 3 blocks'):
        convert_videomae_state_dict(original, recognizer(VIT_S))


def test_non_tensor_value_is_refused():
    original = to_original(recognizer(VIT_S).state_dict())
    original['fc_norm.weight'] = [1.0] * 384
    with pytest.raises(ValueError, match='a list, not a tensor'):
        convert_videomae_state_dict(original, recognizer(VIT_S))


# --- the in-memory path: CheckpointKeysHook before mmengine copies weights


@pytest.mark.parametrize('how', ['raw', 'model', 'module', 'module.prefix'])
def test_hook_converts_in_place_for_mmengine(how):
    """What mmengine copies into the model after the hook is converted."""
    source = recognizer(VIT_H_LIKE, drop_number=2)
    checkpoint = wrap(to_original(source.state_dict()), how)
    target = recognizer(VIT_H_LIKE, drop_number=2, seed=1)
    runner = fake_runner(target, load_from='original.pth')
    CheckpointKeysHook().after_load_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['videomae_conversion']['depth'] == 3
    _load_checkpoint_to_model(target, checkpoint, strict=True)
    x = clip(seed=3)
    assert torch.equal(features(source, x), features(target, x))


def test_hook_leaves_mmaction_checkpoints_alone():
    model = recognizer(VIT_S)
    checkpoint = {'state_dict': model.state_dict(), 'meta': {'epoch': 1}}
    runner = fake_runner(model)
    CheckpointKeysHook().after_load_checkpoint(runner, checkpoint)
    assert checkpoint['meta'] == {'epoch': 1}
    assert checkpoint['state_dict'] is not None


def test_hook_refuses_a_misfit_file():
    checkpoint = {'module': to_original(recognizer(VIT_S, 400).state_dict())}
    runner = fake_runner(recognizer(VIT_S, 174))
    with pytest.raises(ValueError, match='400 classes but the model has 174'):
        CheckpointKeysHook().after_load_checkpoint(runner, checkpoint)


# --- safe by default


@pytest.fixture
def file_with_args(tmp_path):
    """An original file as VideoMAE's save_model writes it: with ``args``."""
    original = to_original(recognizer(VIT_S, num_classes=400).state_dict())
    path = tmp_path / 'checkpoint-29.pth'
    torch.save(
        dict(
            model=original,
            epoch=29,
            args=argparse.Namespace(model='vit_small_patch16_224')), path)
    return str(path)


@pytest.fixture
def file_with_foreign(tmp_path):
    """An original file that also carries an object outside the allow-list."""
    original = to_original(recognizer(VIT_S, num_classes=400).state_dict())
    path = tmp_path / 'checkpoint-foreign.pth'
    torch.save(dict(model=original, extra=fractions.Fraction(1, 3)), path)
    return str(path)


def test_save_model_args_load_by_default(file_with_args, monkeypatch):
    """VideoMAE's own ``args`` (an argparse.Namespace) is allow-listed."""
    monkeypatch.delenv('STA_MMACTION_UNSAFE_FULL_UNPICKLE', raising=False)
    checkpoint = _load_checkpoint(file_with_args, map_location='cpu')
    assert is_original_videomae(checkpoint)


def test_loading_is_safe_by_default(file_with_foreign, monkeypatch):
    """mmengine's loader (the hook's input) refuses arbitrary objects."""
    monkeypatch.delenv('STA_MMACTION_UNSAFE_FULL_UNPICKLE', raising=False)
    with pytest.raises(UnsafeCheckpointError, match='--unsafe-full-unpickle'):
        _load_checkpoint(file_with_foreign, map_location='cpu')
    set_unsafe_full_unpickle(True)
    try:
        checkpoint = _load_checkpoint(file_with_foreign, map_location='cpu')
    finally:
        set_unsafe_full_unpickle(False)
    assert is_original_videomae(checkpoint)


# --- tools/model_converters/convert_videomae_checkpoint.py, tools/test.py


def tiny_config(tmp_path, num_classes=400, **backbone):
    """A real K400 test config with a small STAViT, so a run takes seconds."""
    backbone = dict(embed_dims=64, depth=3, num_heads=2, **backbone)
    base = osp.join(ROOT, 'configs', '_base_', 'sta_vit_k400.py')
    path = tmp_path / f'tiny_vit_{num_classes}.py'
    path.write_text(
        f'_base_ = [{base!r}]\n'
        f'model = dict(backbone=dict({_kwargs(backbone)}),\n'
        f'             cls_head=dict(in_channels=64, '
        f'num_classes={num_classes}))\n')
    return str(path)


def _kwargs(d):
    return ', '.join(f'{k}={v!r}' for k, v in d.items())


def run(cmd, ok=True):
    proc = subprocess.run([sys.executable, *cmd],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    if ok and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def build(config):
    return MODELS.build(Config.fromfile(config).model).eval()


def test_convert_tool_writes_a_strict_mmaction_checkpoint(tmp_path):
    config = tiny_config(tmp_path, drop_number=16)
    torch.manual_seed(0)
    source = build(config)
    src = tmp_path / 'videomae.pth'
    torch.save({'module': to_original(source.state_dict())}, src)
    dst = tmp_path / 'out' / 'mmaction.pth'
    proc = run([TOOL, str(src), str(dst), '--config', config])
    assert 'loads with strict=True' in proc.stdout + proc.stderr

    checkpoint = load_checkpoint_file(dst)  # the output loads safely
    meta = checkpoint['meta']['videomae_conversion']
    assert meta['wrapper'] == 'module' and meta['num_classes'] == 400
    assert len(meta['source_sha256']) == 64
    torch.manual_seed(1)
    target = build(config)
    target.load_state_dict(checkpoint['state_dict'], strict=True)
    x = torch.randn(1, 1, 3, 16, 224, 224)
    assert torch.equal(features(source, x), features(target, x))


def test_convert_tool_refuses_with_a_clear_error(tmp_path):
    config = tiny_config(tmp_path, num_classes=174)
    torch.manual_seed(0)
    state = to_original(build(tiny_config(tmp_path)).state_dict())
    src = tmp_path / 'videomae.pth'
    torch.save({'model': state}, src)
    dst = tmp_path / 'never.pth'
    proc = run([TOOL, str(src), str(dst), '--config', config], ok=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert 'cls_head.fc_cls.weight: file (400, 64) vs model (174, 64)' in \
        proc.stderr
    assert not dst.exists()


def test_convert_tool_is_safe_by_default(file_with_foreign, tmp_path):
    dst = tmp_path / 'never.pth'
    proc = run([TOOL, file_with_foreign, str(dst)], ok=False)
    assert proc.returncode != 0
    assert 'Refused to load' in proc.stderr
    assert not dst.exists()


def test_convert_tool_picks_the_config_by_size(file_with_args, tmp_path):
    """ViT-S with 400 classes maps to sta_vits_k400_r0.py: 12 blocks wanted.

    The test file has 3 blocks, so the (safe, default) load reaches the
    check against the picked config, which names the depths.
    """
    proc = run([TOOL, file_with_args, str(tmp_path / 'never.pth')], ok=False)
    assert proc.returncode != 0
    assert 'missing' in proc.stderr
    assert 'embed_dims=384 and 3 blocks, the model has embed_dims=384 and ' \
        '12 blocks' in proc.stderr


def test_test_py_takes_an_original_file(k400_set, tmp_path):
    """End to end: real clips, K400 protocol, original file fed directly."""
    config = tiny_config(tmp_path, drop_number=32)
    torch.manual_seed(0)
    src = tmp_path / 'videomae_tiny.pth'
    torch.save(
        {
            'module': to_original(build(config).state_dict()),
            'epoch': 29,
            'ds_version': '0.5.8'
        }, src)
    proc = run([
        osp.join(ROOT, 'tools', 'test.py'), config,
        str(src), '--work-dir',
        str(tmp_path / 'wd'), '--cfg-options',
        f'test_dataloader.dataset.ann_file={k400_set["ann_file"]}',
        f'test_dataloader.dataset.data_prefix.video={k400_set["video_root"]}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ])
    log = proc.stdout + proc.stderr
    assert 'Converted an original VideoMAE checkpoint in memory' in log
    assert "under 'module'" in log
    assert 'pos_embed (1, 1568, 64) filled' in log
    [metrics_file] = glob.glob(str(tmp_path / 'wd' / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.loads(f.read().splitlines()[-1])
    assert metrics['tokens'] == [1568, 1312, 1184, 1120]
    for key in ('acc/top1', 'acc/top5', 'acc/mean1'):
        assert 0.0 <= metrics[key] <= 1.0


def test_mmengine_checkpoints_still_load_untouched(tmp_path):
    """The hook's conversion never fires on an MMAction2 file."""
    model = recognizer(VIT_S)
    path = save_mmengine_checkpoint(model.state_dict(), tmp_path / 'c.pth')
    checkpoint = _load_checkpoint(path, map_location='cpu')
    assert not is_original_videomae(checkpoint)
