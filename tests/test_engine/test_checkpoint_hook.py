"""CheckpointKeysHook: every tensor of the model comes from the checkpoint.

The hook runs inside mmengine's ``Runner.load_checkpoint``, before mmengine
copies the weights with ``strict=False`` (which would only log a misfit), so
a checkpoint that does not fit stops the run before any video is decoded.
"""
import logging
import os.path as osp
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from sta_mmaction.engine import CheckpointKeysHook
from sta_mmaction.utils import (CheckpointError, cached_path,
                                check_state_dict, file_sha256,
                                load_recognizer_weights)
from ..conftest import save_mmengine_checkpoint


def fake_runner(model, **cfg):
    """What the hook reads of a Runner: model, cfg and message hub."""
    hub = MessageHub.get_instance(f'hook-test-{time.time_ns()}')
    return SimpleNamespace(model=model, cfg=Config(cfg), message_hub=hub)


def vit_cfg(embed_dims=48, depth=2, num_classes=5):
    """A small stock-ViT recognizer (16 frames of 32x32: 32 tokens)."""
    return dict(
        type='Recognizer3D',
        backbone=dict(
            type='VisionTransformer',
            img_size=32,
            num_frames=16,
            embed_dims=embed_dims,
            depth=depth,
            num_heads=embed_dims // 16),
        cls_head=dict(
            type='TimeSformerHead',
            num_classes=num_classes,
            in_channels=embed_dims))


def vit(embed_dims=48, depth=2, num_classes=5, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(vit_cfg(embed_dims, depth, num_classes)).eval()


def provenance(runner):
    return {
        k[len('sta_provenance/'):]: v
        for k, v in runner.message_hub.runtime_info.items()
        if k.startswith('sta_provenance/')
    }


def run_hook(model, state, **cfg):
    """The hook on ``{'state_dict': state}``; returns the runner."""
    runner = fake_runner(model, load_from='given.pth', **cfg)
    CheckpointKeysHook().after_load_checkpoint(runner,
                                               {'state_dict': dict(state)})
    return runner


def test_full_checkpoint_passes_and_is_recorded(tmp_path):
    model = vit()
    path = save_mmengine_checkpoint(vit(seed=1).state_dict(),
                                    tmp_path / 'full.pth')
    checkpoint = _load_checkpoint(path, map_location='cpu')
    runner = fake_runner(model, load_from=path)
    CheckpointKeysHook().after_load_checkpoint(runner, checkpoint)
    assert provenance(runner) == dict(
        checkpoint=path,
        checkpoint_file=osp.abspath(path),
        checkpoint_sha256=file_sha256(path)[:12])


def test_url_is_recorded_as_its_cached_download(tmp_path, monkeypatch):
    """The hook hashes the file the loader read: a URL's cached download."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = 'https://download.example.org/ckpt/full.pth?download=1'
    path = save_mmengine_checkpoint(vit(seed=1).state_dict(),
                                    tmp_path / 'full.pth')

    def download(url, dst, hash_prefix=None, progress=True):
        with open(path, 'rb') as src, open(dst, 'wb') as out:
            out.write(src.read())

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    checkpoint = _load_checkpoint(url, map_location='cpu')
    runner = fake_runner(vit(), load_from=url)
    CheckpointKeysHook().after_load_checkpoint(runner, checkpoint)
    assert provenance(runner) == dict(
        checkpoint=url,
        checkpoint_file=cached_path(url),
        checkpoint_sha256=file_sha256(path)[:12])


@pytest.mark.parametrize('key', [
    'cls_head.fc_cls.bias', 'cls_head.fc_cls.weight', 'backbone.pos_embed',
    'backbone.fc_norm.weight'
])
def test_any_missing_key_stops_the_run(key):
    """Head keys too, not only the backbone's; the buffer pos_embed too."""
    state = vit(seed=1).state_dict()
    del state[key]
    with pytest.raises(CheckpointError, match='missing') as err:
        run_hook(vit(), state)
    assert key in str(err.value) and 'given.pth' in str(err.value)


def test_unexpected_key_stops_the_run():
    state = vit(seed=1).state_dict()
    state['neck.extra.weight'] = torch.zeros(2)
    with pytest.raises(CheckpointError, match='unexpected.*neck.extra.weight'):
        run_hook(vit(), state)


def test_non_persistent_buffers_are_not_required():
    """Only model.state_dict() keys count."""
    model = vit()
    model.backbone.register_buffer('cache', torch.zeros(3), persistent=False)
    run_hook(model, vit(seed=1).state_dict())


def test_vit_size_is_diagnosed():
    small = vit(embed_dims=384, depth=1, num_classes=400).state_dict()
    with pytest.raises(CheckpointError) as err:
        run_hook(vit(embed_dims=768, depth=1, num_classes=400), small)
    msg = str(err.value)
    assert 'wrong shape' in msg and 'backbone.patch_embed.projection.weight' \
        in msg
    assert ('checkpoint embed_dims 384, config 768: this is a ViT-S '
            'checkpoint') in msg


def test_depth_is_diagnosed():
    with pytest.raises(CheckpointError, match='checkpoint has 3 blocks, '
                       'config 2'):
        run_hook(vit(depth=2), vit(depth=3).state_dict())


def test_head_of_another_dataset_is_diagnosed():
    ssv2 = vit(num_classes=174).state_dict()
    with pytest.raises(CheckpointError) as err:
        run_hook(vit(num_classes=400), ssv2)
    assert ('head has 174 classes (Something-Something V2), config 400 '
            '(Kinetics-400): fine-tuned on another dataset') in str(err.value)
    with pytest.raises(CheckpointError, match='head has 7 classes, config 5:'):
        run_hook(vit(num_classes=5), vit(num_classes=7).state_dict())


def test_swin_and_vit_files_are_told_apart():
    """A Swin config given a ViT file, and a Swin-T file in a small Swin."""
    torch.manual_seed(0)
    swin = nn.Module()
    swin.backbone = MODELS.build(
        dict(
            type='SwinTransformer3D',
            arch=dict(
                embed_dims=24, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2]),
            window_size=(2, 4, 4),
            pretrained2d=False))
    with pytest.raises(CheckpointError, match='the checkpoint is a ViT, the '
                       'config a Swin'):
        check_state_dict(swin, vit().state_dict(), 'vit.pth')
    swin_t = dict(swin.state_dict())
    swin_t['backbone.patch_embed.proj.weight'] = torch.zeros(96, 3, 2, 4, 4)
    for j in range(2, 6):  # Swin-T's third stage has 6 blocks
        swin_t[f'backbone.layers.2.blocks.{j}.norm1.weight'] = torch.ones(96)
    with pytest.raises(CheckpointError, match='checkpoint embed_dims 96, '
                       'config 24: this is a Swin-T checkpoint'):
        check_state_dict(swin, swin_t, 'swin_t.pth')


def test_value_of_another_type_stops_the_run():
    state = vit(seed=1).state_dict()
    state['backbone.fc_norm.weight'] = state['backbone.fc_norm.weight'].numpy()
    with pytest.raises(CheckpointError,
                       match=r'not a tensor .*fc_norm.weight \(ndarray\)'):
        run_hook(vit(), state)


@pytest.mark.parametrize('dtype', [torch.int64, torch.bool, torch.complex64])
def test_dtype_that_does_not_cast_safely_stops_the_run(dtype):
    state = vit(seed=1).state_dict()
    state['cls_head.fc_cls.weight'] = state['cls_head.fc_cls.weight'].to(
        dtype)
    with pytest.raises(CheckpointError, match='dtype that does not cast '
                       f'safely.*cls_head.fc_cls.weight: file {dtype}'):
        run_hook(vit(), state)


def test_half_and_double_weights_are_accepted():
    """DeepSpeed's fp16 files, and float64, cast safely to float32."""
    state = vit(seed=1).state_dict()
    state['backbone.fc_norm.weight'] = state['backbone.fc_norm.weight'].half()
    state['cls_head.fc_cls.bias'] = state['cls_head.fc_cls.bias'].double()
    run_hook(vit(), state)


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_weights_are_refused(bad):
    state = vit(seed=1).state_dict()
    state['backbone.blocks.1.attn.qkv.weight'][3, 4] = bad
    state['cls_head.fc_cls.weight'][0, 0] = bad
    with pytest.raises(CheckpointError) as err:
        run_hook(vit(), state)
    msg = str(err.value)
    # the first such tensor in the model's order
    assert 'backbone.blocks.1.attn.qkv.weight holds 1 NaN/Inf' in msg
    assert 'cls_head' not in msg


def test_module_prefix_is_stripped_once():
    state = vit(seed=1).state_dict()
    run_hook(vit(), {'module.' + k: v for k, v in state.items()})
    with pytest.raises(CheckpointError, match='unexpected'):
        run_hook(vit(), {'module.module.' + k: v for k, v in state.items()})
    both = dict(state, **{'module.cls_head.fc_cls.bias': torch.zeros(5)})
    with pytest.raises(CheckpointError, match='both'):
        run_hook(vit(), both)


def backbone_only():
    return {
        k: v
        for k, v in vit(seed=1).state_dict().items()
        if k.startswith('backbone.')
    }


def test_backbone_only_file_needs_the_opt_in():
    with pytest.raises(CheckpointError) as err:
        run_hook(vit(), backbone_only())
    assert 'it holds no classifier' in str(err.value)
    assert 'allow_partial_load=True' in str(err.value)


def logged(monkeypatch, module):
    """The (message, level) of every ``print_log`` call in ``module``."""
    calls = []
    monkeypatch.setattr(
        module, 'print_log',
        lambda msg, logger=None, level=logging.INFO: calls.append(
            (msg, level)))
    return calls


def test_partial_load_is_allowed_logged_and_recorded(monkeypatch):
    from sta_mmaction.utils import checkpoint_io
    logs = logged(monkeypatch, checkpoint_io)
    runner = run_hook(vit(), backbone_only(), allow_partial_load=True)
    record = provenance(runner)
    assert record['partial_load'] is True
    assert record['random_init_keys'] == [
        'cls_head.fc_cls.bias', 'cls_head.fc_cls.weight'
    ]
    assert record['checkpoint'] == 'given.pth'
    assert [(m, lvl) for m, lvl in logs if 'Partial load' in m] == [(
        'Partial load of given.pth (allow_partial_load): 2 of the model\'s '
        'keys keep their initial (random) weights: cls_head.fc_cls.bias, '
        'cls_head.fc_cls.weight', logging.WARNING)]


@pytest.mark.parametrize('problem', ['shape', 'unexpected', 'dtype', 'nan'])
def test_partial_load_still_refuses_bad_present_keys(problem):
    state = backbone_only()
    key = 'backbone.fc_norm.weight'
    if problem == 'shape':
        state[key] = torch.ones(3)
    elif problem == 'unexpected':
        state['backbone.extra'] = torch.ones(3)
    elif problem == 'dtype':
        state[key] = state[key].to(torch.int32)
    else:
        state[key] = state[key].clone().fill_(float('nan'))
    with pytest.raises(CheckpointError):
        run_hook(vit(), state, allow_partial_load=True)


def test_load_recognizer_weights_shares_the_checks(tmp_path):
    """The demo's and the tools' loader: same refusals, same opt-in."""
    source = vit(seed=1)
    good = save_mmengine_checkpoint(source.state_dict(), tmp_path / 'g.pth')
    model = vit()
    load_recognizer_weights(model, good)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)

    state = source.state_dict()
    state['cls_head.fc_cls.bias'] = torch.full((5, ), float('nan'))
    nan = save_mmengine_checkpoint(state, tmp_path / 'nan.pth')
    with pytest.raises(CheckpointError, match='cls_head.fc_cls.bias holds'):
        load_recognizer_weights(vit(), nan)

    partial = save_mmengine_checkpoint(backbone_only(), tmp_path / 'b.pth')
    with pytest.raises(CheckpointError, match='missing'):
        load_recognizer_weights(vit(), partial)
    model = vit(seed=2)
    head = model.cls_head.fc_cls.weight.clone()
    load_recognizer_weights(model, partial, allow_partial=True)
    assert torch.equal(model.cls_head.fc_cls.weight, head)
    assert torch.equal(model.backbone.fc_norm.weight,
                       source.backbone.fc_norm.weight)


def test_raw_numpy_state_is_refused_through_the_loader(tmp_path):
    """A file that is the state dict itself, with an ndarray in it."""
    state = vit(seed=1).state_dict()
    state['backbone.pos_embed'] = state['backbone.pos_embed'].numpy()
    path = tmp_path / 'raw.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='pos_embed'):
        load_recognizer_weights(vit(), str(path))
    assert isinstance(state['backbone.pos_embed'], np.ndarray)


# --- inside mmengine's Runner -------------------------------------------


def tiny_runner(tmp_path, checkpoint, videos, **cfg_options):
    """A Runner of the tiny STAViT config; with ``videos=0`` its only video
    is a file that does not exist."""
    from mmengine.runner import Runner

    from ..test_tools.test_dist_test import make_video_set, write_tiny_config
    ann, root = make_video_set(
        tmp_path / 'videos',
        labels=[1] * videos,
        extra=[] if videos else [('never_decoded.mp4', 2)])
    cfg = Config.fromfile(
        write_tiny_config(tmp_path / 'tiny.py', ann, root, drop_number=0))
    cfg.merge_from_dict(
        dict(
            load_from=checkpoint,
            work_dir=str(tmp_path / 'work'),
            experiment_name=f'hook-{time.time_ns()}',
            custom_hooks=[dict(type='CheckpointKeysHook')],
            log_level='WARNING',
            **cfg_options))
    return Runner.from_cfg(cfg), cfg


def test_runner_stops_before_any_video_is_decoded(tmp_path):
    """The annotation lists a file that does not exist: it is never read."""
    _, cfg = tiny_runner(tmp_path, None, videos=0)
    state = MODELS.build(cfg.model).state_dict()
    del state['cls_head.fc_cls.weight']
    ckpt = save_mmengine_checkpoint(state, tmp_path / 'no_head.pth')
    runner, _ = tiny_runner(tmp_path, ckpt, videos=0)
    with pytest.raises(CheckpointError, match='cls_head.fc_cls.weight'):
        runner.test()


def test_runner_partial_load_records_provenance(tmp_path):
    _, cfg = tiny_runner(tmp_path, None, videos=0)
    state = {
        k: v
        for k, v in MODELS.build(cfg.model).state_dict().items()
        if k.startswith('backbone.')
    }
    ckpt = save_mmengine_checkpoint(state, tmp_path / 'backbone.pth')
    runner, cfg = tiny_runner(
        tmp_path / 'run', ckpt, videos=1, allow_partial_load=True)
    metrics = runner.test()
    assert 'acc/top1' in metrics
    info = runner.message_hub.runtime_info
    assert info['sta_provenance/partial_load'] is True
    assert info['sta_provenance/random_init_keys'] == [
        'cls_head.fc_cls.bias', 'cls_head.fc_cls.weight'
    ]
    assert info['sta_provenance/checkpoint_sha256'] == file_sha256(ckpt)[:12]


def test_demo_and_visualize_builder_shares_the_checks(tmp_path):
    """build_recognizer (the demo, tools/visualize_tokens.py) refuses a
    partial file unless the config opts in, as tools/test.py does."""
    from sta_mmaction.apis.demo import build_recognizer
    partial = save_mmengine_checkpoint(backbone_only(), tmp_path / 'b.pth')
    cfg = Config(dict(model=vit_cfg()))
    with pytest.raises(CheckpointError, match='it holds no classifier'):
        build_recognizer(cfg, partial)
    cfg.allow_partial_load = True
    model = build_recognizer(cfg, partial)
    assert torch.equal(model.backbone.fc_norm.weight,
                       backbone_only()['backbone.fc_norm.weight'])


@pytest.mark.parametrize('saved, match', [
    ('num_heads=4', 'model.backbone.num_heads=4 .* has num_heads=3'),
    ("norm_cfg=dict(type='LN', eps=1e-05)",
     'norm_cfg.eps=1e-05 .* has norm_cfg.eps=1e-06'),
])
def test_meta_cfg_settings_no_shape_shows_are_compared(tmp_path, saved,
                                                        match):
    """A 48-channel ViT splits into 3 or 4 heads with the same tensors; the
    file's meta.cfg (read, never run) says which it was trained with."""
    state = vit().state_dict()
    cfg_text = ("model = dict(type='Recognizer3D', backbone=dict(type="
                f"'VisionTransformer', {saved}, embed_dims=48, img_size="
                "__import__('os').system('touch ran')))\n")
    path = save_mmengine_checkpoint(state, tmp_path / 'heads.pth', cfg_text)
    model = MODELS.build(dict(vit_cfg(), backbone=dict(
        vit_cfg()['backbone'], norm_cfg=dict(type='LN', eps=1e-6))))
    with pytest.raises(CheckpointError, match=match):
        load_recognizer_weights(model, path)
    assert not osp.exists('ran')
    same = save_mmengine_checkpoint(state, tmp_path / 'same.pth',
                                    Config(dict(model=vit_cfg())).pretty_text)
    load_recognizer_weights(model, same)
