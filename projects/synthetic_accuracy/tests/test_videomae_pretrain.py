"""VideoMAE-style pre-training: the loss, the Runner run, the strict load."""
import copy
import os.path as osp

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.runner import Runner

from projects.synthetic_accuracy.accuracy.masking import tube_mask
from projects.synthetic_accuracy.accuracy.synthetic_sets import make_synthetic_motion
from projects.synthetic_accuracy.accuracy.videomae_pretrain import VideoMAEPretrainer, encoder_init_cfg
from projects.synthetic_accuracy.accuracy.videomae_pretrain import FRESH_KEYS
from sta_mmaction.utils.checkpoint import load_checkpoint_file

from tests.conftest import ROOT, save_mmengine_checkpoint

PROJECT = osp.join(ROOT, 'projects', 'synthetic_accuracy')

CONFIG = osp.join(PROJECT, 'configs', 'videomae_pretrain_tiny.py')
FINETUNE = osp.join(PROJECT, 'configs', 'sta_vit_tiny_synthetic.py')
#: 8 frames of 32x32, patch 8, tubelet 2: 4 slices x 16 positions.
TINY = dict(
    img_size=32,
    patch_size=8,
    embed_dims=32,
    depth=3,
    num_heads=2,
    num_frames=8,
    tubelet_size=2)


def pretrainer(**kwargs):
    backbone = dict(type='STAViT', **TINY)
    return VideoMAEPretrainer(
        backbone=backbone, decoder_dims=32, decoder_depth=1, **kwargs)


def tiny_cfg(cfg, data_root, work_dir):
    """``cfg`` at the tiny size, on ``data_root``, one epoch."""
    cfg.model.backbone.update(TINY)
    cfg.model.decoder_dims = 32
    cfg.model.decoder_depth = 1
    pipe = cfg.train_dataloader.dataset.pipeline
    pipe[1].clip_len = 8
    pipe[3].size = 32
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.ann_file = osp.join(
        data_root, 'train_list_videos.txt')
    cfg.train_dataloader.dataset.data_prefix = dict(
        video=osp.join(data_root, 'train'))
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler = cfg.param_scheduler[:1]
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    return cfg


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """A one-epoch Runner.train of the pre-training config, tiny."""
    root = tmp_path_factory.mktemp('pretrain')
    data = make_synthetic_motion(
        str(root / 'data'), dict(train=2),
        num_classes=2,
        num_frames=10,
        side=32,
        kind='motion')
    cfg = tiny_cfg(Config.fromfile(CONFIG), data['root'], root / 'work')
    Runner.from_cfg(cfg).train()
    ckpt = str(root / 'work' / 'epoch_1.pth')
    assert osp.isfile(ckpt)
    return ckpt


def clips(n=2, seed=0):
    """Clips tiled with one random tube each: the masked tubes are learnable.
    """
    g = torch.Generator().manual_seed(seed)
    tube = torch.rand(n, 3, 2, 8, 8, generator=g)
    return tube.repeat(1, 1, 4, 4, 4)  # (n, 3, 8, 32, 32)


def test_loss_falls_within_a_few_steps():
    torch.manual_seed(0)
    model = pretrainer(mask_ratio=0.75)
    model.init_weights()
    # eight steps at this rate about halve the loss
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    x = clips()
    losses = []
    for step in range(8):
        torch.manual_seed(step % 3)  # a few masks, seen again
        loss = model(x)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_loss_is_on_masked_tubes_only():
    torch.manual_seed(0)
    model = pretrainer(mask_ratio=0.75).eval()
    x = clips()
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, [0, 3, 5, 6, 7, 9, 10, 12, 13, 14, 15, 1]] = True
    mask[1, [1, 2, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15]] = True
    mask[:, 16:] = mask[:, :16].repeat(1, 3)  # whole tubes
    pred, target = model.reconstruct(x, mask)
    assert pred.shape == target.shape == (2, 48, 2 * 8 * 8 * 3)
    # the targets are the masked tubes' standardised pixels, channel last
    tubes = x.reshape(2, 3, 4, 2, 4, 8, 4, 8).permute(0, 2, 4, 6, 3, 5, 7, 1)
    tubes = tubes.reshape(2, 64, 128, 3)
    tubes = (tubes - tubes.mean(2, keepdim=True)) / (
        tubes.var(2, keepdim=True) + 1e-6).sqrt()
    want = tubes.flatten(2)[mask].reshape(2, 48, -1)
    torch.testing.assert_close(target, want)
    # the prediction never sees a masked tube: overwrite their pixels
    grid = mask[:, :16].reshape(2, 1, 1, 4, 1, 4, 1).expand(
        2, 3, 8, 4, 8, 4, 8).reshape(2, 3, 8, 32, 32)
    noisy = torch.where(grid, torch.randn_like(x), x)
    pred2, target2 = model.reconstruct(noisy, mask)
    torch.testing.assert_close(pred2, pred)
    assert not torch.allclose(target2, target)
    # forward's loss is the MSE over the masked tokens of its own mask
    torch.manual_seed(5)
    loss = model(x)['loss']
    torch.manual_seed(5)
    pred, target = model.reconstruct(x, tube_mask(2, 4, 16, 0.75))
    torch.testing.assert_close(loss, ((pred - target)**2).mean())


@pytest.mark.parametrize('normalize', [True, False])
def test_reference_losses_share_the_masked_tubes(normalize):
    torch.manual_seed(0)
    model = pretrainer(mask_ratio=0.75, normalize_target=normalize).eval()
    x = clips()
    gen = torch.Generator().manual_seed(1)
    mask = tube_mask(2, 4, 16, 0.75, generator=gen)
    ref = model.reference_losses(x, mask)
    pred, target = model.reconstruct(x, mask)
    assert ref['model'] == pytest.approx(((pred - target)**2).mean().item())
    assert ref['zero'] == pytest.approx((target**2).mean().item())
    # re-stated: each clip's visible tubes' mean colour, per channel
    tubes = x.reshape(2, 3, 4, 2, 4, 8, 4, 8).permute(0, 2, 4, 6, 3, 5, 7, 1)
    tubes = tubes.reshape(2, 64, 128, 3)
    if normalize:
        tubes = (tubes - tubes.mean(2, keepdim=True)) / (
            tubes.var(2, keepdim=True) + 1e-6).sqrt()
    errors = []
    for b in range(2):
        colour = tubes[b][~mask[b]].mean((0, 1))  # (3, )
        errors.append((tubes[b][mask[b]] - colour)**2)
    want = torch.stack(errors).mean().item()
    assert ref['visible_mean'] == pytest.approx(want, rel=1e-5)
    if normalize:  # every standardised tube has mean 0: the same as zeros
        assert ref['visible_mean'] == pytest.approx(ref['zero'], abs=1e-4)


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match='ratio=1.0'):
        pretrainer(mask_ratio=1.0)
    with pytest.raises(ValueError, match='drop_number=2'):
        VideoMAEPretrainer(backbone=dict(type='STAViT', drop_number=2, **TINY))
    with pytest.raises(ValueError, match='use_mean_pooling'):
        VideoMAEPretrainer(
            backbone=dict(type='STAViT', use_mean_pooling=False, **TINY))
    with pytest.raises(ValueError, match="mode='predict'"):
        pretrainer()(clips(), mode='predict')
    with pytest.raises(ValueError, match=r'\(3, 8, 32, 32\)'):
        pretrainer()(torch.zeros(1, 3, 8, 48, 48))


def test_checkpoint_keys_are_the_backbones(pretrained):
    state = load_checkpoint_file(pretrained)['state_dict']
    got = {k[len('backbone.'):] for k in state if k.startswith('backbone.')}
    want = set(MODELS.build(dict(type='STAViT', **TINY)).state_dict())
    assert got == want - set(FRESH_KEYS)


def finetune_model(ckpt, **backbone):
    cfg = Config.fromfile(FINETUNE)
    cfg.model.backbone.update(TINY, **backbone)
    cfg.model.cls_head.update(in_channels=TINY['embed_dims'], num_classes=2)
    cfg.model.backbone.init_cfg = encoder_init_cfg(ckpt)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.mark.parametrize('strategy',
                         ['sta', 'random', 'temporal', 'semantic', 'tome'])
def test_encoder_loads_strictly_at_every_strategy(pretrained, strategy):
    model = finetune_model(pretrained, strategy=strategy, drop_number=2)
    state = load_checkpoint_file(pretrained)['state_dict']
    mine = model.backbone.state_dict()
    for key, value in state.items():
        if key.startswith('backbone.'):
            torch.testing.assert_close(mine[key[len('backbone.'):]], value)
    # the fresh fc_norm starts as in a from-scratch model
    assert torch.equal(mine['fc_norm.weight'], torch.ones(32))
    assert torch.equal(mine['fc_norm.bias'], torch.zeros(32))
    with torch.no_grad():
        assert torch.isfinite(model.backbone(clips())).all()


def rewrite(ckpt, tmp_path, edit):
    state = dict(load_checkpoint_file(ckpt)['state_dict'])
    edit(state)
    return save_mmengine_checkpoint(state, tmp_path / 'edited.pth')


@pytest.mark.parametrize('edit, named', [
    (lambda s: s.pop('backbone.blocks.1.attn.qkv.weight'),
     'backbone.blocks.1.attn.qkv.weight'),
    (lambda s: s.update({'backbone.blocks.3.norm1.weight': torch.ones(32)}),
     'blocks.3.norm1.weight'),
    (lambda s: s.update({'backbone.blocks.0.mlp.layers.1.bias':
                         torch.zeros(48)}), 'blocks.0.mlp.layers.1.bias'),
    (lambda s: s.update({'backbone.fc_norm.weight': torch.ones(32)}),
     'fc_norm.weight'),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith('backbone.')],
     'no backbone'),
])
def test_init_cfg_refuses_a_misfit_checkpoint(pretrained, tmp_path, edit,
                                              named):
    bad = rewrite(pretrained, tmp_path, edit)
    with pytest.raises(ValueError, match=named):
        finetune_model(bad)


def test_init_cfg_is_what_the_benchmark_sets(pretrained):
    cfg = encoder_init_cfg(pretrained)
    assert cfg[-1]['checkpoint'] == pretrained
    assert cfg[-1]['fresh'] == list(FRESH_KEYS)
    copy.deepcopy(Config(dict(init_cfg=cfg))).pretty_text  # serialisable


def test_config_fits_the_accuracy_benchmark_helpers():
    from projects.synthetic_accuracy.accuracy.stages import (ENCODER_KEYS,
                                                   match_encoder,
                                                   point_at_data, set_epochs)
    pre, cfg = Config.fromfile(CONFIG), Config.fromfile(FINETUNE)
    assert {k: pre.model.backbone[k] for k in ENCODER_KEYS} == \
        {k: cfg.model.backbone[k] for k in ENCODER_KEYS}
    cfg.model.backbone.embed_dims = 48
    match_encoder(pre, cfg)
    assert pre.model.backbone.embed_dims == 48
    set_epochs(pre, 3)
    assert pre.train_cfg.max_epochs == 3
    assert pre.default_hooks.checkpoint.interval == 3
    cosine = pre.param_scheduler[-1]
    assert (cosine.type, cosine.end, cosine.T_max) == ('CosineAnnealingLR',
                                                       3, 2)
    point_at_data(pre, '/data')
    assert pre.train_dataloader.dataset.ann_file == \
        '/data/train_list_videos.txt'
    assert pre.model.mask_ratio == 0.9
    assert pre.val_cfg is None and pre.test_cfg is None
