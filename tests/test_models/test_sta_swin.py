"""STASwin3D: stock equality, kept-token counts, batch independence, FLOPs."""
import copy
import inspect
import os.path as osp

import pytest
import torch

import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)
from mmaction.models.backbones.swin import SwinTransformer3D
from mmaction.registry import MODELS
from sta_mmaction.core import select_tokens, sta_select
from sta_mmaction.models import STASwin3D, STAViT, sta_swin, swin_layers
from ..conftest import ROOT

#: A Swin-T-like backbone small enough for CPU tests: 8 x 64^2 clips give
#: 4 slices and stage grids of 16^2, 8^2, 4^2 and 2^2.
SMALL = dict(
    arch=dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
    window_size=(2, 4, 4),
    pretrained2d=False,
    drop_path_rate=0.)


def build_pair(r, **kwargs):
    """A stock backbone and an STA one with the same weights, in eval."""
    cfg = dict(SMALL, **kwargs)
    torch.manual_seed(0)
    stock = SwinTransformer3D(**cfg)
    stock.eval()
    pruned = STASwin3D(drop_number=r, **cfg)
    pruned.load_state_dict(stock.state_dict(), strict=True)
    return stock, pruned.eval()


def clip(b=2, t=8, size=64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, t, size, size, generator=gen)


def test_zero_drop_is_bit_identical():
    stock, sta = build_pair(0)
    x = clip()
    with torch.no_grad():
        assert torch.equal(stock(x), sta(x))


@pytest.mark.parametrize('window', [(2, 4, 4), (2, 3, 3)])
def test_gather_scatter_path_matches_stock(window):
    """The pruned code path, with nothing to drop, is the stock model.

    Window (2, 3, 3) pads every stage's grid and shifts by (1, 1, 1), so the
    scatter into padded, rolled windows is exercised too.
    """
    stock, sta = build_pair(16, window_size=window)
    sta.drop_number = 0
    x = clip()
    with torch.no_grad():
        ref = stock(x).mean((2, 3, 4))  # (B, C)
        feats, kept = sta.forward_pruned(x)
    torch.testing.assert_close(feats.flatten(1), ref, atol=1e-5, rtol=1e-5)
    assert [k.shape[1] for k in kept] == [256, 64, 16]


def test_shift_mask_weights_are_zero_not_subnormal():
    """The pruned path masks other regions of a shifted window with
    ``PRUNED_KEY_BIAS``, not stock's -100, so no attention weight is a
    subnormal float (slow on CPUs), and the output still matches stock."""
    stock, sta = build_pair(16, window_size=(2, 3, 3))
    subnormal = []

    def hook(module, args, out):
        tiny = (out != 0) & (out.abs() < torch.finfo(out.dtype).tiny)
        subnormal.append(int(tiny.sum()))

    for layer in sta.layers:
        for blk in layer.blocks:
            blk.attn.softmax.register_forward_hook(hook)
    x = clip() * 30  # wide logits, peaked attention
    with torch.no_grad():
        sta(x)
        assert sum(subnormal[-6:]) == 0  # stages 2-4
        sta.drop_number = 0
        feats, _ = sta.forward_pruned(x)
        ref = stock(x).mean((2, 3, 4))
    torch.testing.assert_close(feats.flatten(1), ref, atol=1e-5, rtol=1e-5)
    pos = torch.arange(0, 256, 2).expand(2, -1)  # every other position
    tiles = swin_layers.KeptTiles(pos, (4, 8, 8), (2, 4, 4), (1, 2, 2),
                                  packed_keys=False)
    kinds = swin_layers.window_kinds(2, (4, 8, 8), (2, 4, 4), (1, 2, 2),
                                     torch.device('cpu'))[2]
    for mask in (tiles.mask, kinds):
        assert set(mask.unique().tolist()) == {0., swin_layers.PRUNED_KEY_BIAS}


def _count_tokens(model):
    """Hooks recording how many tokens (rows) each per-token layer ran on."""
    seen = {}

    def record(name):

        def hook(module, args, output):
            rows = args[0].numel() // args[0].shape[-1]
            seen.setdefault(name, []).append(rows)

        return hook

    handles = []
    for s, layer in enumerate(model.layers):
        for i, blk in enumerate(layer.blocks):
            for part in ('attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'):
                mod = blk.get_submodule(part)
                handles.append(mod.register_forward_hook(record((s, i, part))))
        if layer.downsample is not None:
            handles.append(
                layer.downsample.reduction.register_forward_hook(
                    record((s, 'reduction'))))
    return seen, handles


@pytest.mark.parametrize('r, counts, carried', [
    (16, [1024, 192, 40, 9], [48, 10]),
    (24, [1024, 160, 28, 7], [40, 8]),
    (32, [1024, 128, 16, 2], [32, 4]),
])
def test_kept_token_counts_observed(r, counts, carried):
    """The per-token layers of each stage really run on the kept tokens.

    Stage 2 drops r per slice, stage 3 r // 4 per pair of slices, stage 4
    r // 16 per group of four, and the mergings carry the keep ratio.
    """
    _, sta = build_pair(r)
    seen, handles = _count_tokens(sta)
    x = clip(b=2)
    with torch.no_grad():
        feats, kept = sta.forward_pruned(x)
    for h in handles:
        h.remove()
    assert sta.token_counts(x.shape) == counts
    assert [k.shape[1] for k in kept] == counts[1:]
    b = x.shape[0]
    for s in range(4):
        for i in range(2):
            assert seen[(s, i, 'attn.proj')] == [b * counts[s]]
            assert seen[(s, i, 'mlp.fc1')] == [b * counts[s]]
            assert seen[(s, i, 'mlp.fc2')] == [b * counts[s]]
        # the first block of a pruned stage reuses the prune point's keys
        assert seen.get(
            (s, 0, 'attn.qkv')) == ([b * counts[0]] if s == 0 else None)
        assert seen[(s, 1, 'attn.qkv')] == [b * counts[s]]
    # merging into stages 3 and 4 only reduces the carried tokens
    assert seen[(0, 'reduction')] == [b * 256]
    assert seen[(1, 'reduction')] == [b * carried[0]]
    assert seen[(2, 'reduction')] == [b * carried[1]]
    plan = sta.token_schedule(x.shape)
    assert [p['groups'] * p['candidates'] for p in plan[1:]] == carried
    # positions are unique and inside each stage's grid
    for k, n in zip(kept, (256, 64, 16)):
        assert k.min() >= 0 and k.max() < n
        assert all(len(set(row.tolist())) == k.shape[1] for row in k)


@pytest.mark.parametrize('strategy', sta_swin.SWIN_STRATEGIES)
def test_strategy_token_counts_and_rule(strategy):
    """Every selecting strategy keeps the same counts per stage, and stage 2
    keeps what ``sta_select`` with that strategy keeps."""
    _, sta = build_pair(24)
    _, other = build_pair(24)
    other.strategy, other.seed = strategy, 3
    seen, handles = _count_tokens(other)
    x = clip(b=2, seed=4)
    with torch.no_grad():
        feats, kept = other.forward_pruned(x)
        _, sta_kept = sta.forward_pruned(x)
    for h in handles:
        h.remove()
    counts = [1024, 160, 28, 7]
    assert other.token_counts(x.shape) == counts
    assert [k.shape[1] for k in kept] == counts[1:]
    for s in range(1, 4):
        assert seen[(s, 1, 'mlp.fc1')] == [2 * counts[s]]
    assert torch.isfinite(feats).all()
    if strategy != 'sta':
        assert not torch.equal(kept[0], sta_kept[0])
    if strategy == 'random':
        return
    # stage 2: the rule on the stage input with the first block's keys
    blk = other.layers[1].blocks[0]
    with torch.no_grad():
        tokens = other.layers[0](
            other.patch_embed(x), do_downsample=False)
        tokens = other.layers[0].downsample(tokens).flatten(1, 3)
        k = blk.attn.qkv(blk.norm1(tokens)).chunk(3, -1)[1]
        keys = k.view(2, 256, blk.attn.num_heads, -1).mean(2)
    idx = select_tokens(tokens, keys, 4, 24, strategy=strategy)
    assert torch.equal(kept[0], idx)


def test_random_strategy_seed_is_honoured():
    """A clip keeps the same tokens alone, in a batch, in any order."""
    _, sta = build_pair(24)
    sta.init_sta(24, 'random', 5)
    x = clip(b=4, seed=3)
    order = [3, 1, 0, 2]
    with torch.no_grad():
        batch = sta.forward_pruned(x)[1]
        again = sta.forward_pruned(x)[1]
        shuffled = sta.forward_pruned(x[order])[1]
        alone = [sta.forward_pruned(x[i:i + 1])[1] for i in range(4)]
        sta.init_sta(24, 'random', 6)
        other = sta.forward_pruned(x)[1]
    assert all(torch.equal(p, q) for p, q in zip(batch, again))
    for i in range(4):
        for p in range(3):
            assert torch.equal(batch[p][i], alone[i][p][0])
            assert torch.equal(batch[p][i], shuffled[p][order.index(i)])
    assert not any(torch.equal(batch[0][i], other[0][i]) for i in range(4))
    assert not torch.equal(batch[0][0], batch[0][1])


def test_strategy_from_config_and_zero_drop():
    cfg = dict(SMALL, type='STASwin3D', drop_number=0, strategy='random',
               seed=1)
    sta = MODELS.build(cfg).eval()
    assert (sta.strategy, sta.seed) == ('random', 1)
    stock, _ = build_pair(0)
    sta.load_state_dict(stock.state_dict(), strict=True)
    x = clip()
    with torch.no_grad():
        assert torch.equal(stock(x), sta(x))


@pytest.mark.parametrize('r', [192, 256, 320])
def test_paper_view_counts(r):
    """32 x 224^2: 50176, 12544 - 16r, 3136 - 6r, 784 - 1.75r."""
    _, sta = build_pair(r)
    assert sta.token_counts(
        (32, 224,
         224)) == [50176, 12544 - 16 * r, 3136 - 6 * r, 784 - 7 * r // 4]


def test_batch_independent_and_deterministic():
    _, sta = build_pair(24, window_size=(2, 3, 3))
    x = clip(b=3, seed=2)
    with torch.no_grad():
        feats, kept = sta.forward_pruned(x)
        for i in range(3):
            one, kept_one = sta.forward_pruned(x[i:i + 1])
            torch.testing.assert_close(
                one, feats[i:i + 1], atol=1e-5, rtol=1e-5)
            for a, b in zip(kept_one, kept):
                assert torch.equal(a[0], b[i])
        again, _ = sta.forward_pruned(x)
    assert torch.equal(again, feats)
    # different clips choose different tokens
    assert not torch.equal(kept[0][0], kept[0][1])


def test_stage2_selection_is_sta_select():
    """The first prune point equals ``sta_select`` on the stage-2 tokens with
    the first block's attention keys, computed here independently."""
    r = 16
    _, sta = build_pair(r)
    x = clip(b=2)
    with torch.no_grad():
        _, kept = sta.forward_pruned(x)
        y = sta.layers[0](sta.patch_embed(x), do_downsample=False)
        y = sta.layers[0].downsample(y)  # (B, D, H, W, C)
        b, d, _, _, c = y.shape
        tokens = y.flatten(1, 3)  # (B, N, C), time-major
        blk = sta.layers[1].blocks[0]
        qkv = blk.attn.qkv(blk.norm1(tokens))  # (B, N, 3C)
        keys = qkv[..., c:2 * c].unflatten(-1, (blk.attn.num_heads, -1))
        idx = sta_select(tokens, keys.mean(-2), d, r)
    assert torch.equal(idx, kept[0])


def test_pooling_averages_kept_tokens_only():
    _, sta = build_pair(16)
    captured = []
    handle = sta.norm3.register_forward_hook(
        lambda m, args, out: captured.append((args[0], out)))
    with torch.no_grad():
        feats, kept = sta.forward_pruned(clip(b=2))
    handle.remove()
    tokens, normed = captured[0]
    assert tokens.shape[1] == kept[-1].shape[1] == 9
    torch.testing.assert_close(feats.flatten(1), normed.mean(1))
    assert feats.shape == (2, 192, 1, 1, 1)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_and_constant_clip_are_finite(dtype):
    _, sta = build_pair(16, window_size=(2, 3, 3))
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        for x in (clip(b=2), torch.zeros(2, 3, 8, 64, 64)):
            feats, kept = sta.forward_pruned(x)
            assert torch.isfinite(feats).all()
            assert [k.shape[1] for k in kept] == [192, 40, 9]


def test_no_host_sync_in_forward():
    """The pruned forward never reads tensor values back to Python, but to
    pack keys, which only CPU forwards do (``packs_keys``)."""
    packing = inspect.getsource(swin_layers.pack_keys)
    src = inspect.getsource(sta_swin) + inspect.getsource(
        swin_layers).replace(packing, '')
    for call in ('.item(', '.tolist(', '.cpu(', '.numpy(', 'nonzero('):
        assert call not in src
    assert '.tolist(' in packing
    assert 'packs_keys(device)' in inspect.getsource(swin_layers.KeptTiles)
    assert not swin_layers.packs_keys(torch.device('cuda'))


def vit_small(r):
    torch.manual_seed(0)
    return STAViT(
        img_size=64, embed_dims=48, depth=6, num_heads=4, num_frames=16,
        drop_number=r).eval()


def test_one_token_counts_signature():
    """Both backbones take a clip (T, H, W) or a view (B, C, T, H, W)."""
    vit, (_, swin) = vit_small(4), build_pair(16)
    for model, t in ((vit, 16), (swin, 8)):
        assert model.token_counts((t, 96, 96)) == model.token_counts(
            (1, 3, t, 96, 96))
        assert model.token_counts((t, 96, 96)) != model.token_counts(
            (t, 64, 64))
        with pytest.raises(ValueError, match=r'shape=\(1, 16, 96, 96\) must'):
            model.token_counts((1, 16, 96, 96))
    assert vit.token_counts((16, 96, 96)) == [288, 288 - 8 * 4, 288 - 12 * 4,
                                               288 - 14 * 4]
    assert vit.token_counts((1, 3, 16, 64, 64)) == vit.token_counts()
    with pytest.raises(ValueError, match='built for 16 frames.*T=8'):
        vit.token_counts((8, 64, 64))
    assert swin.token_counts() == swin.token_counts((32, 224, 224))


@pytest.mark.parametrize('kind', ['vit', 'swin'])
def test_kept_grids_are_the_kept_positions(kind):
    """``kept_grids`` marks exactly the kept (t, h, w) cells per point."""
    if kind == 'vit':
        model, x, grids = vit_small(4), clip(b=2, t=16), [(8, 4, 4)] * 3
    else:
        model, x = build_pair(16)[1], clip(b=2)
        grids = [(4, 8, 8), (4, 4, 4), (4, 2, 2)]
    with torch.no_grad():
        _, kept = model.forward_pruned(x)
    cells = model.kept_grids(kept, x.shape)
    assert [tuple(c.shape) for c in cells] == [(2, ) + g for g in grids]
    for pos, c in zip(kept, cells):
        for i in range(2):
            t, h, w = torch.nonzero(c[i], as_tuple=True)
            flat = (t * c.shape[2] + h) * c.shape[3] + w
            assert sorted(flat.tolist()) == sorted(pos[i].tolist())


@pytest.mark.parametrize('kind', ['vit', 'swin'])
def test_forward_mutates_no_state(kind):
    """A forward leaves every plain attribute of the backbone as it was."""
    model = vit_small(4) if kind == 'vit' else build_pair(16)[1]
    x = clip(b=1, t=16) if kind == 'vit' else clip(b=1)

    def plain(m):  # tensors by identity: their values are weights
        return {(name, k): id(v) if torch.is_tensor(v) else copy.copy(v)
                for name, mod in m.named_modules()
                for k, v in vars(mod).items()
                if k not in ('_parameters', '_buffers', '_modules')}

    before = plain(model)
    with torch.no_grad():
        model(x)
        model.forward_pruned(x)
    assert plain(model) == before


def test_registered_and_strict_roundtrip(tmp_path):
    """A stock recognizer's mmengine checkpoint loads strictly, buffers
    (``relative_position_index``) included."""
    from mmengine.runner import load_checkpoint

    from ..conftest import save_mmengine_checkpoint
    head = dict(type='I3DHead', num_classes=5, in_channels=192)
    torch.manual_seed(0)
    stock = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(type='SwinTransformer3D', **SMALL),
            cls_head=head)).eval()
    path = save_mmengine_checkpoint(stock.state_dict(), tmp_path / 'c.pth')
    saved = torch.load(path, weights_only=False)
    assert set(saved) >= {'meta', 'state_dict'}
    assert any('relative_position_index' in k for k in saved['state_dict'])
    x = clip(b=1).unsqueeze(1)  # (N, views, C, T, H, W)
    for r in (0, 16):
        sta = MODELS.build(
            dict(
                type='Recognizer3D',
                backbone=dict(type='STASwin3D', drop_number=r, **SMALL),
                cls_head=head)).eval()
        assert set(sta.state_dict()) == set(stock.state_dict())
        load_checkpoint(sta, path, strict=True)
        for k, v in stock.state_dict().items():
            assert torch.equal(sta.state_dict()[k], v), k
        with torch.no_grad():
            feat = sta.extract_feat(x)[0]
            if r == 0:
                assert torch.equal(stock.extract_feat(x)[0], feat)
            else:
                scores = sta.cls_head(feat)
                assert scores.shape == (1, 5)
                assert torch.isfinite(scores).all()


@pytest.mark.parametrize('kwargs, match', [
    (dict(drop_number=-3), 'drop_number=-3 is negative'),
    (dict(drop_number=1.5), 'drop_number must be an int, got 1.5'),
    (dict(drop_number=True), 'drop_number must be an int'),
    (dict(
        drop_number=8,
        arch=dict(embed_dims=24, depths=[2, 2, 2], num_heads=[1, 2, 2]),
        out_indices=(2, )), 'needs the 4 stages'),
    (dict(drop_number=8, out_indices=(2, 3)), 'out_indices=\\(3, \\)'),
    (dict(drop_number=8, strategy='tome'),
     "strategy='tome' is not available for this backbone; choose one of "
     "\\('sta', 'random', 'temporal', 'semantic', 'oracle'\\)"),
    (dict(drop_number=8, strategy='STA'), "strategy='STA' is not a"),
    (dict(drop_number=8, strategy='random', seed='1'), "seed='1' must be"),
])
def test_bad_settings(kwargs, match):
    cfg = dict(SMALL, **kwargs)
    with pytest.raises(ValueError, match=match):
        STASwin3D(**cfg)


@pytest.mark.parametrize('r, shape, match', [
    (33, (1, 3, 8, 64, 64), 'largest allowed drop_number for this clip '
     'size is 32'),
    (320, (1, 3, 32, 224, 224), None),
    (393, (1, 3, 32, 224, 224), 'largest allowed drop_number for this '
     'clip size is 392'),
    (16, (1, 3, 12, 64, 64),
     r'T=12 frames give ceil\(T / patch_size\[0\]\) = ceil\(12 / 2\) = 6'),
    (16, (1, 3, 6, 64, 64), r'= 3\. Use e\.g\. 16 or 32 frames'),
    (16, (1, 1, 8, 64, 64), 'in_channels=3'),
    (16, (3, 8, 64, 64), r'\(B, C, T, H, W\)'),
])
def test_bad_clip(r, shape, match):
    _, sta = build_pair(r)
    if match is None:  # fits: the check alone, no forward
        assert sta.token_counts(shape[2:])[1] == 12544 - 16 * r
        return
    with pytest.raises(ValueError, match=match):
        sta(torch.randn(*shape))
    if len(shape) == 5 and shape[1] == 3:
        with pytest.raises(ValueError, match=match):
            sta.token_counts(shape[2:])


#: The paper's GFLOPs per 32 x 224^2 view, backbone only, by drop_number.
PAPER_GFLOPS = {
    'sta_swint_k400': {
        0: 88,
        192: 68,
        256: 61,
        320: 54
    },
    'sta_swins_k400': {
        0: 166,
        192: 121,
        256: 106,
        320: 91
    },
    'sta_swinb_k400': {
        0: 282,
        192: 202,
        256: 176,
        320: 149
    },
    'sta_swinb_ssv2': {
        0: 321,
        192: 241,
        256: 215,
        320: 188
    },
}
#: The Swin-B IN-22K Kinetics-400 configs are the paper's Swin-B row.
PAPER_GFLOPS['sta_swinb22k_k400'] = PAPER_GFLOPS['sta_swinb_k400']


def _config(name, r):
    from mmengine.config import Config

    from sta_mmaction.analysis import view_shape
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}_r{r}.py'))
    assert cfg.model.backbone.type == 'STASwin3D'
    assert cfg.model.backbone.drop_number == r
    assert view_shape(cfg) == (1, 3, 32, 224, 224)
    return cfg


def _analytic_gflops(cfg):
    """:func:`analytic_swin_flops` with the config's backbone settings."""
    from sta_mmaction.analysis import analytic_swin_flops, view_shape
    backbone = cfg.model.backbone
    settings = {
        k: backbone[k]
        for k in ('strategy', 'window_size', 'patch_size', 'mlp_ratio',
                  'in_channels', 'patch_norm') if k in backbone
    }
    flops = analytic_swin_flops(backbone.arch, view_shape(cfg)[2:],
                                backbone.drop_number, **settings)
    return flops / 1e9


def test_flops_swint_config():
    """The one full-size trace (fvcore, Swin-T on 32 x 224^2, ~10 s): below
    the paper's cell, the kept tokens, and the analytic count, which equals
    the trace."""
    from sta_mmaction.analysis import backbone_report, view_shape
    cfg = _config('sta_swint_k400', 320)
    backbone = MODELS.build(cfg.model.backbone)
    report = backbone_report(backbone, view_shape(cfg))
    paper = PAPER_GFLOPS['sta_swint_k400'][320]
    assert 0.8 * paper < report['gflops'] < paper, report
    assert report['tokens'] == [50176, 12544 - 16 * 320, 3136 - 6 * 320,
                                784 - 7 * 320 // 4]
    assert _analytic_gflops(cfg) == pytest.approx(report['gflops'], rel=1e-12)


@pytest.mark.parametrize('name, r',
                         [(name, r) for name in sorted(PAPER_GFLOPS)
                          for r in (0, 192, 256, 320)])
def test_flops_other_configs(name, r):
    """Every cell of the paper's table, by the analytic count (equal to
    fvcore's trace, see test_flops_swint_config and
    tests/test_analysis/test_flops.py): stock's at r=0, below the paper's
    where the attention runs on the kept tokens' query tiles."""
    paper = PAPER_GFLOPS[name][r]
    got = _analytic_gflops(_config(name, r))
    if r == 0:
        assert abs(got / paper - 1) <= 0.014, (name, r, got, paper)
    else:
        assert 0.8 * paper < got < paper, (name, r, got, paper)


CONFIGS = [(a, r) for a in ('t', 's', 'b') for r in (0, 192, 256, 320)]

#: Where the configs load Video Swin's released checkpoints from.
RELEASE = ('https://github.com/SwinTransformer/storage/releases/download/'
           'v1.0.4/')


@pytest.mark.parametrize('arch, r',
                         CONFIGS + [('b_ssv2', r) for r in (0, 192, 256, 320)])
def test_configs(arch, r):
    from mmengine.config import Config

    from sta_mmaction.analysis import view_shape
    ssv2 = arch.endswith('ssv2')
    name = 'sta_swinb_ssv2' if ssv2 else f'sta_swin{arch}_k400'
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}_r{r}.py'))
    backbone = cfg.model.backbone
    assert backbone.type == 'STASwin3D' and backbone.drop_number == r
    assert cfg.custom_imports.imports == ['sta_mmaction']
    assert view_shape(cfg) == (1, 3, 32, 224, 224)
    loader = cfg.test_dataloader
    assert loader.batch_size == 1 and loader.num_workers == 2
    steps = [s['type'] for s in loader.dataset.pipeline]
    assert steps[0] == 'DecordInit' and 'ThreeCrop' in steps
    sample = loader.dataset.pipeline[1]
    if ssv2:
        assert tuple(backbone.window_size) == (16, 7, 7)
        assert cfg.model.cls_head.num_classes == 174
        assert sample == dict(
            type='UniformSample', clip_len=32, num_clips=1, test_mode=True)
        assert cfg.load_from == (
            RELEASE + 'swin_base_patch244_window1677_sthv2.pth')
    else:
        assert tuple(backbone.window_size) == (8, 7, 7)
        assert cfg.model.cls_head.num_classes == 400
        assert (sample['clip_len'], sample['frame_interval'],
                sample['num_clips']) == (32, 2, 4)
        size = dict(t='tiny', s='small', b='base')[arch]
        assert backbone.arch == size
        assert cfg.load_from == (
            f'{RELEASE}swin_{size}_patch244_window877_kinetics400_1k.pth')
    assert cfg.model.cls_head.in_channels == (768 if arch in 'ts' else 1024)


def test_tools_test_end_to_end(k400_set, tmp_path):
    """tools/test.py on a real clip, 4 clips x 3 crops of 32 frames, with a
    narrow random Swin so that CPU time stays small."""
    import glob
    import json
    import subprocess
    import sys

    from mmengine.config import Config

    from ..conftest import save_mmengine_checkpoint
    # one real clip: the twelve 32-frame views are decoded in full either way
    ann_file = tmp_path / 'one_clip.txt'
    ann_file.write_text(open(k400_set['ann_file']).readline())
    tool = osp.join(ROOT, 'tools', 'test.py')
    cfg_path = tmp_path / 'narrow_swint_r320.py'
    base = osp.join(ROOT, 'configs', 'sta_swint_k400_r320.py')
    cfg_path.write_text(
        f'_base_ = [{base!r}]\n'
        'model = dict(\n'
        '    backbone=dict(arch=dict(_delete_=True, embed_dims=24,\n'
        '                            depths=[2, 2, 2, 2],\n'
        '                            num_heads=[1, 2, 2, 4])),\n'
        '    cls_head=dict(in_channels=192))\n')
    cfg = Config.fromfile(str(cfg_path))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = save_mmengine_checkpoint(model.state_dict(), tmp_path / 'c.pth',
                                    cfg.pretty_text)
    cmd = [
        sys.executable, tool,
        str(cfg_path), ckpt, '--work-dir',
        str(tmp_path / 'wd'), '--cfg-options',
        f'test_dataloader.dataset.ann_file={ann_file}',
        f'test_dataloader.dataset.data_prefix.video={k400_set["video_root"]}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'STASwin3D on one (1, 3, 32, 224, 224) view' in log
    [metrics_file] = glob.glob(str(tmp_path / 'wd' / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.loads(f.read().splitlines()[-1])
    assert metrics['tokens'] == [50176, 7424, 1216, 224]
    for key in ('acc/top1', 'acc/top5', 'acc/mean1'):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics['num_evaluated'] == 1
    # the views: 4 clips x 3 crops of 32 frames from each real clip
    from mmaction.registry import DATASETS
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.ann_file = str(ann_file)
    ds_cfg.data_prefix = dict(video=k400_set['video_root'])
    sample = DATASETS.build(ds_cfg)[0]
    assert tuple(sample['inputs'].shape) == (12, 3, 32, 224, 224)
