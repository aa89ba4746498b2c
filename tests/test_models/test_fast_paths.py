"""Fast paths on top of exact STA: fused attention, bf16 autocast, compile.

Fused attention must give the explicit path's outputs (fp32, 1e-5) and the
same kept tokens, on random and on real clips; bf16 keeps STA's scores in
float32 and most of fp32's kept tokens; ``torch.compile(fullgraph=True)``
gives the eager outputs. The end-to-end runs go through ``tools/test.py``.
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)
from mmaction.models.backbones.swin import SwinTransformer3D
from mmaction.models.backbones.vit_mae import VisionTransformer
from mmaction.structures import ActionDataSample
from sta_mmaction.analysis.flops import count_flops
from sta_mmaction.apis import configure_test, run_test
from sta_mmaction.engine import STAPruningHook
from sta_mmaction.engine.test_loop import float32_scores
from sta_mmaction.models import STASwin3D, STAViT, convert_backbone
from sta_mmaction.models.swin_layers import PRUNED_KEY_BIAS
from ..test_tools.test_dist_test import (last_metrics, make_video_set,
                                         run_test_py, tiny_checkpoint,
                                         write_tiny_config)

#: 16 frames of 64^2: 8 slices of 4 x 4 patches ... 64 tokens per slice.
VIT = dict(img_size=64, embed_dims=64, depth=3, num_heads=4, num_frames=16)
#: 16 frames of 64^2: 8 slices, stage grids 16^2 ... 2^2; two blocks per
#: stage, so every stage also runs a shifted window.
SWIN = dict(
    arch=dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
    window_size=(2, 4, 4),
    pretrained2d=False,
    drop_path_rate=0.)
VIT_R = 8
SWIN_R = 16


def vit_pair(r, **settings):
    """Explicit and fused STAViT with the same weights, in eval."""
    torch.manual_seed(0)
    explicit = STAViT(drop_number=r, **VIT, **settings).eval()
    fused = STAViT(drop_number=r, fused_attention=True, **VIT, **settings)
    fused.load_state_dict(explicit.state_dict(), strict=True)
    return explicit, fused.eval()


def swin_pair(r):
    torch.manual_seed(0)
    explicit = STASwin3D(drop_number=r, **SWIN).eval()
    fused = STASwin3D(drop_number=r, fused_attention=True, **SWIN)
    fused.load_state_dict(explicit.state_dict(), strict=True)
    return explicit, fused.eval()


def random_clip(b=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 16, 64, 64, generator=gen)


def real_clips(shared_data, frames=16, side=64):
    """(2, 3, T, side, side) normalised clips of demo.mp4 and test.mp4."""
    import decord
    clips = []
    for name in ('demo.mp4', 'test.mp4'):
        reader = decord.VideoReader(osp.join(shared_data, name))
        idx = np.linspace(0, len(reader) - 1, frames).round().astype(int)
        x = torch.from_numpy(reader.get_batch(list(idx)).asnumpy())
        x = x.permute(0, 3, 1, 2).float()  # (T, 3, H, W)
        x = F.interpolate(x, size=(side, side), mode='bilinear')
        mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
        clips.append(((x - mean) / std).permute(1, 0, 2, 3))
    return torch.stack(clips)


def assert_same_run(explicit, fused, x):
    """Outputs within 1e-5 and identical kept tokens."""
    with torch.no_grad():
        want, kept_want = explicit.forward_pruned(x)
        got, kept_got = fused.forward_pruned(x)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        torch.testing.assert_close(fused(x), explicit(x), atol=1e-5, rtol=0)
    assert len(kept_got) == len(kept_want)
    for a, b in zip(kept_got, kept_want):
        assert torch.equal(a, b)


@pytest.mark.parametrize('strategy', ['sta', 'tome'])
@pytest.mark.parametrize('r', [0, VIT_R])
def test_vit_fused_matches_explicit(r, strategy):
    explicit, fused = vit_pair(r, strategy=strategy)
    assert_same_run(explicit, fused, random_clip())


@pytest.mark.parametrize('strategy', ['sta', 'tome'])
@pytest.mark.parametrize('r', [0, VIT_R])
def test_vit_fused_matches_explicit_on_real_clips(r, strategy, shared_data):
    explicit, fused = vit_pair(r, strategy=strategy)
    assert_same_run(explicit, fused, real_clips(shared_data))


@pytest.mark.parametrize('r', [0, SWIN_R])
def test_swin_fused_matches_explicit(r):
    explicit, fused = swin_pair(r)
    assert_same_run(explicit, fused, random_clip())


@pytest.mark.parametrize('r', [0, SWIN_R])
def test_swin_fused_matches_explicit_on_real_clips(r, shared_data):
    explicit, fused = swin_pair(r)
    assert_same_run(explicit, fused, real_clips(shared_data))


def test_swin_fused_zero_drop_gives_stock_feature_maps():
    torch.manual_seed(0)
    stock = SwinTransformer3D(**SWIN)
    stock.eval()  # the stock train() returns None
    fused = STASwin3D(fused_attention=True, **SWIN).eval()
    fused.load_state_dict(stock.state_dict(), strict=True)
    x = random_clip()
    with torch.no_grad():
        want = stock(x)
        got = fused(x)
    assert got.shape == want.shape  # the full (B, C, D, H, W) map
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def count_sdpa(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(kwargs.get('attn_mask'))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counted)
    return calls


def test_vit_zero_drop_fused_runs_its_own_forward(monkeypatch):
    _, fused = vit_pair(0)

    def stock_forward(*args):
        raise AssertionError('the stock forward ran')

    monkeypatch.setattr(VisionTransformer, 'forward', stock_forward)
    calls = count_sdpa(monkeypatch)
    with torch.no_grad():
        fused(random_clip())
    assert len(calls) == VIT['depth']


def test_vit_fused_keys_are_the_attention_keys(monkeypatch):
    """STA's keys are SDPA's own keys, from one qkv projection per block."""
    from sta_mmaction.models import sta_vit
    _, fused = vit_pair(VIT_R)
    weights = {id(blk.attn.qkv.weight) for blk in fused.blocks}
    projections, sdpa_keys, sta_keys = [], [], []
    linear, sdpa, select = (F.linear, F.scaled_dot_product_attention,
                            sta_vit.select_tokens)

    def spy_linear(input, weight, bias=None):
        if id(weight) in weights:
            projections.append(1)
        return linear(input, weight, bias)

    def spy_sdpa(q, k, v, **kwargs):
        sdpa_keys.append(k.mean(1))
        return sdpa(q, k, v, **kwargs)

    def spy_select(x, keys, *args, **kwargs):
        sta_keys.append(keys)
        return select(x, keys, *args, **kwargs)

    monkeypatch.setattr(F, 'linear', spy_linear)
    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy_sdpa)
    monkeypatch.setattr(sta_vit, 'select_tokens', spy_select)
    with torch.no_grad():
        fused(random_clip())
    assert len(projections) == VIT['depth']
    assert len(sta_keys) == len(fused.prune_layers)
    for layer, keys in zip(fused.prune_layers, sta_keys):
        assert torch.equal(keys, sdpa_keys[layer])


def test_vit_fused_tome_log_size_is_an_additive_mask(monkeypatch):
    _, fused = vit_pair(VIT_R, strategy='tome')
    calls = count_sdpa(monkeypatch)
    with torch.no_grad():
        fused(random_clip())
    masks = [m for m in calls if m is not None]
    # blocks after the first merge attend with log(size) on the keys
    assert len(masks) == VIT['depth'] - 1
    for mask in masks:
        assert mask.is_floating_point() and mask.shape[1:3] == (1, 1)
        assert (mask >= 0).all() and (mask > 0).any()


def test_swin_fused_masks_are_finite_floats(monkeypatch):
    """Every window attention of the fused Swin takes one finite float mask
    (bias, shift and pruned keys); their sizes and values are checked in
    tests/test_models/test_swin_layers.py."""
    _, fused = swin_pair(SWIN_R)
    calls = count_sdpa(monkeypatch)
    with torch.no_grad():
        fused(random_clip())
    assert len(calls) >= sum(SWIN['arch']['depths'])  # shift kinds, chunks
    for mask in calls:
        assert mask is not None and mask.is_floating_point()
        assert torch.isfinite(mask).all()
    assert any((m <= PRUNED_KEY_BIAS / 2).any() for m in calls)


@pytest.mark.parametrize('model', ['vit', 'swin'])
def test_fused_gflops_match_explicit(model):
    if model == 'vit':
        explicit, fused = vit_pair(VIT_R)
    else:
        explicit, fused = swin_pair(SWIN_R)
    x = random_clip(b=1)
    want = count_flops(explicit, (x, ))
    got = count_flops(fused, (x, ))
    assert 'aten::scaled_dot_product_attention' not in got['unsupported']
    assert abs(got['flops'] / want['flops'] - 1) < 0.005


def test_fused_attention_setting_is_checked():
    with pytest.raises(ValueError, match="fused_attention='yes' must be "
                       'True or False'):
        STAViT(fused_attention='yes', **VIT)
    with pytest.raises(ValueError, match='fused_attention=1 must be'):
        STASwin3D(fused_attention=1, **SWIN)
    with pytest.raises(ValueError, match='did you mean fused_attention'):
        STAViT(fused_attenton=True, **VIT)


def test_convert_and_hook_accept_fused_attention():
    explicit, fused = vit_pair(VIT_R)
    torch.manual_seed(0)
    stock = VisionTransformer(**VIT).eval()
    stock.load_state_dict(explicit.state_dict(), strict=True)
    convert_backbone(stock, VIT_R, fused_attention=True)
    assert stock.fused_attention is True
    x = random_clip()
    with torch.no_grad():
        assert torch.equal(stock(x), fused(x))
    hook = STAPruningHook(drop_number=VIT_R, fused_attention=True)
    assert hook.settings == dict(fused_attention=True)


# ------------------------------------------------------------------ bf16


def test_bf16_scores_become_float32_for_acc_metric():
    from mmaction.evaluation import AccMetric
    sample = ActionDataSample()
    sample.set_field(torch.tensor([0.1, 0.7, 0.2], dtype=torch.bfloat16),
                     'pred_score')
    sample.set_gt_label(torch.tensor([1]))
    metric = AccMetric()
    metric.dataset_meta = {}
    with pytest.raises(TypeError):  # numpy has no bfloat16
        metric.process({}, [sample.to_dict()])
    float32_scores([sample])
    assert sample.pred_score.dtype == torch.float32
    metric.results.clear()
    metric.process({}, [sample.to_dict()])
    assert metric.compute_metrics(metric.results)['top1'] == 1.0


@pytest.mark.parametrize('fused', [False, True])
def test_bf16_kept_sets_overlap_fp32_on_real_clips(fused, shared_data):
    explicit, fast = vit_pair(VIT_R)
    model = fast if fused else explicit
    x = real_clips(shared_data)
    dtypes = []
    model.blocks[0].mlp.register_forward_hook(
        lambda m, i, out: dtypes.append(out.dtype))
    with torch.no_grad():
        _, kept32 = model.forward_pruned(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            _, kept16 = model.forward_pruned(x)
    assert dtypes == [torch.float32, torch.bfloat16]
    overlaps = []
    for a, b in zip(kept32, kept16):
        same = [
            len(set(i.tolist()) & set(j.tolist())) / i.numel()
            for i, j in zip(a, b)
        ]
        overlaps.append(min(same))
    print(f'bf16 vs fp32 kept-set overlap per prune point '
          f'(fused={fused}): {[round(o, 3) for o in overlaps]}')
    assert min(overlaps) > 0.8


def test_sta_scores_stay_float32_under_bf16(monkeypatch):
    from sta_mmaction.core import sta as rule
    seen = []
    accumulate = rule.accumulate

    def spy(src_keys, src_weight, keys):
        seen.append((src_keys.dtype, keys.dtype))
        return accumulate(src_keys, src_weight, keys)

    monkeypatch.setattr(rule, 'accumulate', spy)
    _, fused = vit_pair(VIT_R)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        fused(random_clip())
    assert seen and all(d == (torch.float32, ) * 2 for d in seen)


# --------------------------------------------------------------- compile


@pytest.mark.parametrize('r', [0, VIT_R])
def test_vit_compiles_fullgraph(r):
    """Compiled with ``fullgraph=True``, fused attention, as eager.

    At r=0 the explicit path is MMAction2's own forward, and at r>0 it
    shares every line with the fused one but the attention core, so the
    fused model is the one compiled (each compile costs tens of seconds
    here).
    """
    _, fused = vit_pair(r)
    x = random_clip(b=1)
    compiled = torch.compile(fused, fullgraph=True, dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), fused(x), atol=1e-5, rtol=0)


# ------------------------------------------------------- tools/test.py


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('fast')
    ann, videos = make_video_set(root / 'videos')
    config = write_tiny_config(root / 'tiny_sta.py', ann, videos)
    ckpt = tiny_checkpoint(config, root / 'tiny.pth')
    return dict(root=root, config=config, ckpt=ckpt)


def test_test_py_bf16_fused_end_to_end(tiny_run):
    work = tiny_run['root'] / 'bf16'
    run_test_py(tiny_run['config'], tiny_run['ckpt'], work, '--amp', 'bf16',
                '--fused-attention')
    metrics = last_metrics(work)
    assert {'acc/top1', 'acc/top5', 'acc/mean1'} <= set(metrics)
    assert metrics['precision'] == 'bf16' and metrics['fused_attention']
    assert metrics['acc/top1'] == pytest.approx(0.6)


def test_compile_run_end_to_end(tiny_run):
    """A ``compile=True`` test run (``tools/test.py --compile``), in process.

    The loop compiles the backbone with the options it is given; here
    dynamo's ``eager`` backend, so the run traces the graph without
    inductor's code generation (a minute and a half per worker here), which
    ``test_vit_compiles_fullgraph`` checks on the model itself.
    """
    work = tiny_run['root'] / 'compiled'
    cfg = configure_test(
        tiny_run['config'],
        tiny_run['ckpt'],
        work_dir=str(work),
        compile=True)
    assert cfg.test_cfg.compile is True
    cfg.test_cfg.compile = dict(backend='eager', fullgraph=True)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    metrics = run_test(cfg)
    assert metrics['compile'] is True
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 1
    assert metrics['acc/top1'] == pytest.approx(0.6)


def test_fp16_on_cpu_is_a_clear_error(tiny_run):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA, where fp16 runs')
    with pytest.raises(ValueError, match="amp='fp16' needs CUDA"):
        configure_test(tiny_run['config'], tiny_run['ckpt'], amp='fp16')
    with pytest.raises(ValueError, match="amp='fp8' is not"):
        configure_test(tiny_run['config'], tiny_run['ckpt'], amp='fp8')
    # mmengine's own switch autocasts to bfloat16 on the CPU
    with pytest.raises(ValueError, match='test_cfg.fp16=True on cpu'):
        configure_test(tiny_run['config'], tiny_run['ckpt'],
                       cfg_options={'test_cfg.fp16': True})


def test_configure_test_sets_the_fast_paths(tiny_run):
    cfg = configure_test(
        tiny_run['config'],
        tiny_run['ckpt'],
        fused_attention=True,
        amp='bf16',
        compile=True)
    assert cfg.model.backbone.fused_attention is True
    assert cfg.test_cfg.type == 'STATestLoop'
    assert cfg.test_cfg.amp == 'bf16' and cfg.test_cfg.compile is True
    plain = configure_test(tiny_run['config'], tiny_run['ckpt'])
    assert 'fused_attention' not in plain.model.backbone
    assert plain.test_cfg.type == 'TestLoop'


def test_fused_attention_on_unconverted_stock_is_refused(tiny_run):
    with pytest.raises(ValueError, match='--fused-attention needs an STA '
                       'backbone'):
        configure_test(
            tiny_run['config'],
            tiny_run['ckpt'],
            cfg_options={'model.backbone.type': 'VisionTransformer'},
            fused_attention=True)
