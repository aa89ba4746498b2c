"""STAViT trains at r > 0: gradients through the kept tokens only."""
import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

#: 8 frames of 32x32, patch 8, tubelet 2: 4 slices x 16 positions.
TINY = dict(
    type='STAViT',
    img_size=32,
    patch_size=8,
    embed_dims=32,
    depth=3,
    num_heads=2,
    num_frames=8,
    tubelet_size=2,
    drop_number=2)
STRATEGIES = ['sta', 'random', 'temporal', 'semantic', 'tome']


def recognizer(**backbone):
    model = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(TINY, **backbone),
            cls_head=dict(
                type='TimeSformerHead', num_classes=3, in_channels=32)))
    model.init_weights()
    return model


def batch(n=2):
    g = torch.Generator().manual_seed(0)
    clips = torch.randn(n, 1, 3, 8, 32, 32, generator=g)
    samples = [ActionDataSample().set_gt_label(i % 3) for i in range(n)]
    return clips, samples


@pytest.mark.parametrize('strategy', STRATEGIES)
def test_every_parameter_gets_a_gradient_at_r(strategy):
    torch.manual_seed(0)
    model = recognizer(strategy=strategy, seed=0).train()
    clips, samples = batch()
    loss = model(clips, samples, mode='loss')['loss_cls']
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('strategy', STRATEGIES)
def test_train_mode_keeps_the_tokens_of_eval_mode(strategy):
    torch.manual_seed(0)
    backbone = MODELS.build(dict(TINY, strategy=strategy, seed=0))
    clips = batch()[0].flatten(0, 1)
    with torch.no_grad():
        _, kept_eval = backbone.eval().forward_pruned(clips)
    feats, kept_train = backbone.train().forward_pruned(
        clips.requires_grad_())
    for a, b in zip(kept_eval, kept_train):
        assert torch.equal(a, b)
        assert not b.requires_grad
    assert a.shape[1] < 64  # it did prune
    feats.sum().backward()
    assert torch.isfinite(clips.grad).all()


def test_selection_is_not_differentiated():
    """The loss's gradient is that of the kept tokens, selection held fixed.

    With the kept indices replayed as constants (a gather of the same
    positions), the gradient into the clip is the same: nothing flows
    through the scores that chose them.
    """
    torch.manual_seed(0)
    backbone = MODELS.build(dict(TINY, strategy='sta')).train()
    clips = batch()[0].flatten(0, 1).requires_grad_()
    feats, kept = backbone.forward_pruned(clips)
    (grad, ) = torch.autograd.grad(feats.square().sum(), clips)

    def replay(x):
        x = backbone.patch_embed(x)[0] + backbone.pos_embed  # (B, N, C)
        pos = torch.arange(x.shape[1]).expand(x.shape[0], -1)  # (B, N)
        point = dict(zip(backbone.prune_layers, kept))
        for i, blk in enumerate(backbone.blocks):
            x = blk(x)
            if i in point:
                # positions of the previous kept set -> rows of x
                rows = (point[i][:, :, None] == pos[:, None, :]).float()
                idx = rows.argmax(-1)  # (B, N')
                x = x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))
                pos = point[i]
        return backbone.fc_norm(x.mean(1))

    clips2 = clips.detach().clone().requires_grad_()
    feats2 = replay(clips2)
    torch.testing.assert_close(feats2, feats)
    (grad2, ) = torch.autograd.grad(feats2.square().sum(), clips2)
    torch.testing.assert_close(grad2, grad)
