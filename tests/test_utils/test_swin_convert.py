"""Original Video Swin checkpoints: layout detection, conversion, refusals.

Random weights are written in the layout of the original Video Swin release
(SwinTransformer/Video-Swin-Transformer v1.0.4): the key list and shapes are
built below from that repository's ``swin_transformer.py`` module structure,
not from our model, and cross-checked against MMAction2's by the inverse
mapping. The file is converted, loaded strictly and compared bit for bit
with an MMAction2 model built from the same tensors.
"""
import glob
import importlib.util
import itertools
import json
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from sta_mmaction.engine import CheckpointKeysHook
from sta_mmaction.utils import (CheckpointError, check_state_dict,
                                convert_swin_state_dict, describe_swin_state,
                                is_original_swin, is_original_videomae,
                                load_checkpoint_file, load_recognizer_weights)

from ..conftest import ROOT
from ..test_engine.test_checkpoint_hook import fake_runner

TOOL = osp.join(ROOT, 'tools', 'model_converters',
                'convert_swin_checkpoint.py')
RELEASE = ('https://github.com/SwinTransformer/storage/releases/download/'
           'v1.0.4/')
#: A narrow four-stage Swin; 8 frames of 64^2 give stage grids 16^2 .. 2^2.
TINY = dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])
WINDOW = (2, 4, 4)


def original_layout(embed_dims, depths, num_heads, window, num_classes,
                    patch=(2, 4, 4)):
    """Key -> shape of an original Video Swin recognizer file.

    Written from the original modules: ``PatchEmbed3D`` (``proj`` Conv3d,
    ``norm`` since the release configs set ``patch_norm=True``),
    ``BasicLayer`` (``blocks``, ``downsample`` = ``PatchMerging`` with
    ``reduction`` (no bias) and ``norm`` over 4C, on all but the last
    stage), ``SwinTransformerBlock3D`` (``norm1``, ``attn``, ``norm2``,
    ``mlp`` = ``Mlp`` with ``fc1``/``fc2``), ``WindowAttention3D``
    (``relative_position_bias_table``, ``relative_position_index`` buffer,
    ``qkv``, ``proj``), the final ``norm`` and ``I3DHead.fc_cls``.
    """
    c, b = embed_dims, 'backbone.'
    shapes = {
        b + 'patch_embed.proj.weight': (c, 3, *patch),
        b + 'patch_embed.proj.bias': (c, ),
        b + 'patch_embed.norm.weight': (c, ),
        b + 'patch_embed.norm.bias': (c, ),
    }
    wd, wh, ww = window
    table = (2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1)
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        dim = c * 2**i
        for j in range(depth):
            p = f'{b}layers.{i}.blocks.{j}.'
            for norm in ('norm1', 'norm2'):
                shapes[f'{p}{norm}.weight'] = shapes[f'{p}{norm}.bias'] = (
                    dim, )
            shapes.update({
                p + 'attn.relative_position_bias_table': (table, heads),
                p + 'attn.relative_position_index': (wd * wh * ww, ) * 2,
                p + 'attn.qkv.weight': (3 * dim, dim),
                p + 'attn.qkv.bias': (3 * dim, ),
                p + 'attn.proj.weight': (dim, dim),
                p + 'attn.proj.bias': (dim, ),
                p + 'mlp.fc1.weight': (4 * dim, dim),
                p + 'mlp.fc1.bias': (4 * dim, ),
                p + 'mlp.fc2.weight': (dim, 4 * dim),
                p + 'mlp.fc2.bias': (dim, ),
            })
        if i < len(depths) - 1:
            p = f'{b}layers.{i}.downsample.'
            shapes[p + 'reduction.weight'] = (2 * dim, 4 * dim)
            shapes[p + 'norm.weight'] = shapes[p + 'norm.bias'] = (4 * dim, )
    out = c * 2**(len(depths) - 1)
    shapes[b + 'norm.weight'] = shapes[b + 'norm.bias'] = (out, )
    shapes['cls_head.fc_cls.weight'] = (num_classes, out)
    shapes['cls_head.fc_cls.bias'] = (num_classes, )
    return shapes


def window_index(window):
    """The original's relative position index, restated per token pair."""
    wd, wh, ww = window
    coords = list(itertools.product(range(wd), range(wh), range(ww)))
    return torch.tensor([[(d - e + wd - 1) * (2 * wh - 1) * (2 * ww - 1) +
                          (h - g + wh - 1) * (2 * ww - 1) + (w - v + ww - 1)
                          for e, g, v in coords] for d, h, w in coords])


def random_original(num_classes=5, window=WINDOW, seed=0, **arch):
    """Random weights in the original layout (normal, norms included)."""
    arch = dict(TINY, **arch)
    gen = torch.Generator().manual_seed(seed)
    index = window_index(window)
    return {
        k: index.clone() if k.endswith('relative_position_index') else
        torch.randn(shape, generator=gen) * 0.2
        for k, shape in original_layout(
            window=window, num_classes=num_classes, **arch).items()
    }


def release_file(state, how='state_dict'):
    """The ways the file may come: as mmcv 1.x's save_checkpoint writes it
    (meta, state_dict, optimizer), the bare state dict, or DDP-prefixed."""
    if how == 'raw':
        return dict(state)
    if how == 'module.prefix':
        return {'module.' + k: v for k, v in state.items()}
    return dict(
        meta=dict(
            mmcv_version='1.3.1',
            time=time.asctime(),
            epoch=30,
            iter=98400,
            config='model = dict(type="Recognizer3D")'),
        state_dict=state,
        optimizer=dict(state={}, param_groups=[dict(lr=1e-5, params=[0])]))


def recognizer(num_classes=5, drop_number=0, window=WINDOW, **arch):
    return MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(
                type='STASwin3D',
                drop_number=drop_number,
                arch=dict(TINY, **arch),
                window_size=window,
                pretrained2d=False,
                drop_path_rate=0.),
            cls_head=dict(
                type='I3DHead',
                num_classes=num_classes,
                in_channels=TINY['embed_dims'] * 8,
                average_clips='prob'))).eval()


def mmaction_names(state):
    """The test's own rename, as MMAction2 1.x names the final norm."""
    return {k.replace('backbone.norm.', 'backbone.norm3.'): v
            for k, v in state.items()}


def scores(model, x):
    with torch.no_grad():
        return model.cls_head(model.extract_feat(x)[0])


def clip(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 1, 3, 8, 64, 64, generator=gen)  # (N, views, ...)


def test_layout_is_mmaction_inverse_mapped_and_original_names():
    """Our key list and MMAction2's agree by the inverse of the one rename,
    and names read in the original code are in it with their shapes."""
    ours = original_layout(window=WINDOW, num_classes=5, **TINY)
    theirs = {
        k.replace('backbone.norm3.', 'backbone.norm.'): tuple(v.shape)
        for k, v in recognizer().state_dict().items()
    }
    assert ours == theirs
    full = original_layout(
        128, [2, 2, 18, 2], [4, 8, 16, 32], (8, 7, 7), num_classes=400)
    assert full['backbone.norm.weight'] == (1024, )
    assert full['backbone.patch_embed.proj.weight'] == (128, 3, 2, 4, 4)
    assert full['backbone.layers.2.blocks.17.attn.'
                'relative_position_bias_table'] == (15 * 13 * 13, 16)
    assert full['backbone.layers.0.blocks.1.attn.'
                'relative_position_index'] == (392, 392)
    assert full['backbone.layers.0.downsample.reduction.weight'] == (256, 512)
    assert full['backbone.layers.3.blocks.1.mlp.fc2.bias'] == (1024, )
    assert 'backbone.layers.3.downsample.norm.weight' not in full
    assert full['cls_head.fc_cls.weight'] == (400, 1024)
    # ~88M parameters, as the release README says of Swin-B
    params = sum(
        torch.Size(s).numel() for k, s in full.items()
        if not k.endswith('relative_position_index'))
    assert 87e6 < params < 90e6
    stock = recognizer(window=(8, 7, 7)).state_dict()
    assert torch.equal(
        stock['backbone.layers.0.blocks.0.attn.relative_position_index'],
        window_index((8, 7, 7)))


@pytest.mark.parametrize('how, r', [('state_dict', 0), ('state_dict', 24),
                                    ('raw', 0), ('module.prefix', 24)])
def test_strict_load_and_identical_predictions(how, r, tmp_path):
    state = random_original()
    path = tmp_path / 'swin_tiny_patch244_window877_kinetics400_1k.pth'
    torch.save(release_file(state, how), path)
    torch.manual_seed(1)
    converted = recognizer(drop_number=r)
    checkpoint = load_recognizer_weights(converted, str(path))
    assert checkpoint['meta']['swin_conversion']['final_norm'] == \
        'backbone.norm3'
    assert 'optimizer' not in checkpoint
    torch.manual_seed(2)
    reference = recognizer(drop_number=r)
    reference.load_state_dict(mmaction_names(state), strict=True)
    x = clip()
    assert torch.equal(scores(converted, x), scores(reference, x))


def test_unconverted_file_would_not_fit():
    """What the conversion fixes: the original names do not fit as they are."""
    with pytest.raises(CheckpointError, match=r'backbone\.norm\.bias'):
        check_state_dict(recognizer(), random_original(), 'orig.pth')


def test_describe():
    info = describe_swin_state(release_file(random_original(num_classes=7)))
    assert info == dict(
        wrapper='state_dict',
        tensors=len(random_original()),
        embed_dims=24,
        depths=[2, 2, 2, 2],
        size=None,
        num_classes=7,
        window_tokens=32,
        final_norm='backbone.norm3')
    full = original_layout(96, [2, 2, 18, 2], [3, 6, 12, 24], (1, 1, 1), 400)
    shapes_only = {k: torch.zeros(0) for k in full}
    shapes_only['backbone.patch_embed.proj.weight'] = torch.zeros(96, 1)
    assert describe_swin_state(shapes_only)['size'] == 'Swin-S'


def test_detection_is_specific():
    original = random_original()
    assert is_original_swin(release_file(original))
    assert not is_original_videomae(release_file(original))
    mmaction = {'state_dict': recognizer().state_dict(), 'meta': {}}
    assert not is_original_swin(mmaction)
    vit = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(
                type='VisionTransformer',
                img_size=32,
                num_frames=4,
                embed_dims=32,
                depth=1,
                num_heads=2),
            cls_head=dict(
                type='TimeSformerHead', num_classes=3, in_channels=32)))
    assert not is_original_swin({'state_dict': vit.state_dict()})
    for junk in (None, [1], {'state_dict': 3}):
        assert not is_original_swin(junk)
        with pytest.raises(CheckpointError, match='Not an original Video'):
            convert_swin_state_dict(junk)


def test_mmaction_file_loads_untouched(tmp_path):
    model = recognizer()
    path = tmp_path / 'mm.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, path)
    checkpoint = load_recognizer_weights(recognizer(), str(path))
    assert checkpoint['meta'] == {'epoch': 1}


def test_hook_converts_in_place_for_mmengine():
    state = random_original()
    checkpoint = release_file(state)
    target = recognizer(drop_number=24)
    runner = fake_runner(target, load_from='original.pth')
    CheckpointKeysHook().after_load_checkpoint(runner, checkpoint)
    assert set(checkpoint) == {'state_dict', 'meta'}
    assert checkpoint['meta']['epoch'] == 30  # the file's meta is kept
    assert checkpoint['meta']['swin_conversion']['wrapper'] == 'state_dict'
    _load_checkpoint_to_model(target, checkpoint, strict=True)
    reference = recognizer(drop_number=24)
    reference.load_state_dict(mmaction_names(state), strict=True)
    x = clip(seed=3)
    assert torch.equal(scores(target, x), scores(reference, x))


def test_wrong_class_count_and_size_are_named(tmp_path):
    runner = fake_runner(recognizer(num_classes=400), load_from='sthv2.pth')
    with pytest.raises(CheckpointError) as err:
        CheckpointKeysHook().after_load_checkpoint(
            runner, release_file(random_original(num_classes=174)))
    assert 'cls_head.fc_cls.weight: file (174, 192), model (400, 192)' in \
        str(err.value)
    assert 'head has 174 classes (Something-Something V2)' in str(err.value)
    with pytest.raises(CheckpointError) as err:
        load_recognizer_weights(
            recognizer(),
            _saved(random_original(depths=[2, 2, 4, 2]), tmp_path / 'd.pth'))
    assert 'unexpected (28 keys the model lacks)' in str(err.value)
    assert 'backbone.layers.2.blocks.2.' in str(err.value)
    assert 'checkpoint has 4 blocks, config 2' in str(err.value)


def _saved(state, path):
    torch.save(release_file(state), path)
    return str(path)


@pytest.mark.parametrize('layout', [dict, mmaction_names])
def test_window_size_mismatch_is_refused(tmp_path, layout):
    """(4, 4, 2) windows give tables and indices of the same shapes as
    (2, 4, 4), so only the stored index values tell them apart; in either
    layout (MMAction2's stores the index too)."""
    path = _saved(layout(random_original(window=(4, 4, 2))),
                  tmp_path / 'w.pth')
    with pytest.raises(CheckpointError, match='another window_size'):
        load_recognizer_weights(recognizer(window=(2, 4, 4)), path)
    with pytest.raises(CheckpointError, match='another window_size'):
        load_recognizer_weights(
            recognizer(window=(2, 4, 4)), path, allow_partial=True)


def test_videomae_converter_names_a_swin_file():
    from sta_mmaction.utils import describe_videomae_state
    with pytest.raises(CheckpointError, match='an original Video Swin '
                       'checkpoint: convert it with .*convert_swin'):
        describe_videomae_state(release_file(random_original()))


def test_partial_load_of_a_backbone_only_file(tmp_path):
    state = {
        k: v
        for k, v in random_original().items() if k.startswith('backbone.')
    }
    model = recognizer()
    load_recognizer_weights(
        model, _saved(state, tmp_path / 'b.pth'), allow_partial=True)
    assert torch.equal(model.state_dict()['backbone.norm3.weight'],
                       state['backbone.norm.weight'])


# --- configs, tools/model_converters/convert_swin_checkpoint.py, test.py


@pytest.mark.parametrize('name, url', [
    ('sta_swint_k400', 'swin_tiny_patch244_window877_kinetics400_1k.pth'),
    ('sta_swins_k400', 'swin_small_patch244_window877_kinetics400_1k.pth'),
    ('sta_swinb_k400', 'swin_base_patch244_window877_kinetics400_1k.pth'),
    ('sta_swinb22k_k400', 'swin_base_patch244_window877_kinetics400_22k.pth'),
    ('sta_swinb_ssv2', 'swin_base_patch244_window1677_sthv2.pth'),
])
@pytest.mark.parametrize('r', [0, 192, 256, 320])
def test_configs_point_at_the_release(name, url, r):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}_r{r}.py'))
    assert cfg.load_from == RELEASE + url
    assert cfg.model.backbone.drop_number == r
    assert cfg.model.backbone.arch == dict(t='tiny', s='small').get(
        name[8], 'base')
    # the release's img_norm_cfg (RGB), which MMAction2 1.x applies in the
    # data preprocessor
    pre = cfg.model.data_preprocessor
    assert list(pre.mean) == [123.675, 116.28, 103.53]
    assert list(pre.std) == [58.395, 57.12, 57.375]


def _tool():
    spec = importlib.util.spec_from_file_location('convert_swin', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('size, classes, config', [
    ('Swin-T', 400, 'sta_swint_k400_r0.py'),
    ('Swin-S', 400, 'sta_swins_k400_r0.py'),
    ('Swin-B', 400, 'sta_swinb22k_k400_r0.py'),
    ('Swin-B', 174, 'sta_swinb_ssv2_r0.py'),
])
def test_convert_tool_picks_the_config(size, classes, config):
    picked = _tool().default_config(dict(size=size, num_classes=classes))
    assert picked == osp.join(ROOT, 'configs', config)
    with pytest.raises(ValueError, match='Pass --config'):
        _tool().default_config(dict(size=None, num_classes=400))


def tiny_config(tmp_path, num_classes=400, drop_number=0):
    """The real K400 Swin-T config, narrowed so a run takes seconds."""
    base = osp.join(ROOT, 'configs', 'sta_swint_k400_r0.py')
    path = tmp_path / f'tiny_swin_{num_classes}.py'
    path.write_text(
        f'_base_ = [{base!r}]\n'
        'model = dict(\n'
        f'    backbone=dict(drop_number={drop_number},\n'
        '        arch=dict(_delete_=True, embed_dims=24, depths=[2, 2, 2, 2],'
        '\n                  num_heads=[1, 2, 2, 4])),\n'
        f'    cls_head=dict(in_channels=192, num_classes={num_classes}))\n'
        'load_from = None\n')
    return str(path)


def run(cmd, ok=True):
    proc = subprocess.run([sys.executable, *cmd],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    if ok and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def test_convert_tool_writes_a_strict_mmaction_checkpoint(tmp_path):
    config = tiny_config(tmp_path)
    state = random_original(num_classes=400, window=(8, 7, 7))
    src = tmp_path / 'swin.pth'
    torch.save(release_file(state), src)
    dst = tmp_path / 'out' / 'mmaction.pth'
    proc = run([TOOL, str(src), str(dst), '--config', config])
    assert 'loads with strict=True' in proc.stdout + proc.stderr
    checkpoint = load_checkpoint_file(str(dst))
    assert 'backbone.norm3.weight' in checkpoint['state_dict']
    assert len(checkpoint['meta']['swin_conversion']['source_sha256']) == 64
    model = MODELS.build(Config.fromfile(config).model).eval()
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    assert not is_original_swin(checkpoint)


def test_convert_tool_refuses_with_a_clear_error(tmp_path):
    config = tiny_config(tmp_path, num_classes=174)
    src = tmp_path / 'swin.pth'
    torch.save(
        release_file(random_original(num_classes=400, window=(8, 7, 7))), src)
    dst = tmp_path / 'never.pth'
    proc = run([TOOL, str(src), str(dst), '--config', config], ok=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert 'cls_head.fc_cls.weight: file (400, 192), model (174, 192)' in \
        proc.stderr
    assert not dst.exists()


def test_test_py_takes_an_original_file(k400_set, tmp_path):
    """End to end on real clips (--quick: 1 clip x 1 crop of 32 frames)."""
    config = tiny_config(tmp_path, drop_number=320)
    src = tmp_path / 'swin_base_patch244_window877_kinetics400_22k.pth'
    torch.save(
        release_file(random_original(num_classes=400, window=(8, 7, 7))), src)
    proc = run([
        osp.join(ROOT, 'tools', 'test.py'), config,
        str(src), '--quick', '--work-dir',
        str(tmp_path / 'wd'), '--cfg-options',
        f'test_dataloader.dataset.ann_file={k400_set["ann_file"]}',
        f'test_dataloader.dataset.data_prefix.video={k400_set["video_root"]}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ])
    log = proc.stdout + proc.stderr
    assert 'Converted an original Video Swin checkpoint in memory' in log
    assert "under 'state_dict'" in log
    assert 'renamed backbone.norm3.*' in log
    [metrics_file] = glob.glob(str(tmp_path / 'wd' / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.loads(f.read().splitlines()[-1])
    for key in ('acc/top1', 'acc/top5', 'acc/mean1'):
        assert 0.0 <= metrics[key] <= 1.0
