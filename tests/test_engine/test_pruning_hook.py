"""STAPruningHook: a stock model pruned by the hook is the STA model.

The model-level tests drive the hook with a small stand-in for the runner
(``model``, ``cfg``, ``hooks``): the hook reads nothing else before the test
epoch, and of those not ``cfg``. The end-to-end tests run ``tools/test.py`` on a stock MMAction2
config with the hook added and on the matching STA config, on generated
clips, and compare the metrics JSON and the dumped scores.
"""
import glob
import json
import os.path as osp
import pickle
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmaction.models.backbones.vit_mae import VisionTransformer
from mmaction.registry import HOOKS, MODELS
from torch import nn

from sta_mmaction.synthetic import make_k400_set
from sta_mmaction.engine import STAPruningHook, STAReportHook
from sta_mmaction.models import STASwin3D, STAViT, convert_backbone, unwrap
from ..conftest import ROOT, save_mmengine_checkpoint

#: A small VideoMAE ViT: 16 frames of 64^2 -> 8 slices of 4 x 4 tokens.
VIT = dict(
    type='VisionTransformer',
    img_size=64,
    patch_size=16,
    embed_dims=48,
    depth=6,
    num_heads=4,
    num_frames=16,
    norm_cfg=dict(type='LN', eps=1e-6))
#: A small Video Swin: 8 x 64^2 clips give 4 slices, stage grids 16^2 ... 2^2.
SWIN = dict(
    type='SwinTransformer3D',
    arch=dict(embed_dims=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
    window_size=(2, 4, 4),
    pretrained2d=False,
    drop_path_rate=0.)
CASES = {
    'vit':
    dict(
        backbone=VIT,
        head=dict(type='TimeSformerHead', in_channels=48),
        frames=16,
        r=4),
    'swin':
    dict(
        backbone=SWIN,
        head=dict(type='I3DHead', in_channels=192),
        frames=8,
        r=16),
}


def model_cfg(case, **backbone):
    c = CASES[case]
    return dict(
        type='Recognizer3D',
        backbone=dict(c['backbone'], **backbone),
        cls_head=dict(c['head'], num_classes=10, average_clips='prob'),
        data_preprocessor=dict(
            type='ActionDataPreprocessor', format_shape='NCTHW'))


def build(case, **backbone):
    torch.manual_seed(0)
    return MODELS.build(model_cfg(case, **backbone)).eval()


def fake_runner(model, cfg_model, hooks):
    """What the hook reads of a Runner before the test epoch."""
    return SimpleNamespace(
        model=model, cfg=Config(dict(model=cfg_model)), hooks=hooks)


def view(case, b=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, CASES[case]['frames'], 64, 64, generator=gen)


@pytest.mark.parametrize('case', ['vit', 'swin'])
def test_hook_output_equals_sta_backbone(case):
    """Hook-pruned stock model == the STA backbone at the same r."""
    r = CASES[case]['r']
    stock = build(case)
    sta_type = 'STAViT' if case == 'vit' else 'STASwin3D'
    reference = MODELS.build(model_cfg(case, type=sta_type,
                                       drop_number=r)).eval()
    reference.load_state_dict(stock.state_dict(), strict=True)
    weights = {k: v.data_ptr() for k, v in stock.state_dict().items()}

    shape = (1, 3, CASES[case]['frames'], 64, 64)
    hook, report = STAPruningHook(drop_number=r), STAReportHook(shape=shape)
    runner = fake_runner(stock, model_cfg(case), [hook, report])
    hook.before_test(runner)
    report.before_test(runner)
    report.before_test_iter(runner, 0)

    assert type(stock.backbone) is type(reference.backbone)
    assert stock.backbone.drop_number == r
    # weights untouched: same tensors, nothing copied or moved
    assert {k: v.data_ptr() for k, v in stock.state_dict().items()} == weights
    x = view(case)
    with torch.no_grad():
        assert torch.equal(stock.backbone(x), reference.backbone(x))
        feats, kept = stock.backbone.forward_pruned(x)
        ref_feats, ref_kept = reference.backbone.forward_pruned(x)
    assert torch.equal(feats, ref_feats)
    assert all(torch.equal(a, b) for a, b in zip(kept, ref_kept))
    shape = tuple(x.shape)
    assert stock.backbone.token_counts(shape) == \
        reference.backbone.token_counts(shape)
    # the report hook, run after it, reported the pruned backbone
    assert report.report['tokens'] == reference.backbone.token_counts(shape)


@pytest.mark.parametrize('case', ['vit', 'swin'])
def test_drop_number_zero_is_stock(case):
    stock = build(case)
    x = view(case)
    with torch.no_grad():
        before = stock.backbone(x)
    convert_backbone(stock.backbone, 0)
    with torch.no_grad():
        assert torch.equal(stock.backbone(x), before)


def test_applying_twice_is_harmless():
    model = build('vit')
    hooks = [STAPruningHook(drop_number=4), STAPruningHook(drop_number=4)]
    runner = fake_runner(model, model_cfg('vit'), hooks)
    for hook in hooks:
        hook.before_test(runner)
    x = view('vit')
    with torch.no_grad():
        once = model.backbone(x)
    for hook in hooks:
        hook.before_test(runner)
    assert type(model.backbone) is STAViT
    assert model.backbone.drop_number == 4
    assert model.backbone.prune_layers == (0, 2, 4)
    with torch.no_grad():
        assert torch.equal(model.backbone(x), once)


def test_sta_config_with_hook_takes_the_hook_r():
    model = build('vit', type='STAViT', drop_number=0)
    convert_backbone(model.backbone, 4)
    reference = build('vit', type='STAViT', drop_number=4)
    x = view('vit')
    with torch.no_grad():
        assert torch.equal(model.backbone(x), reference.backbone(x))


def test_distributed_wrapper(tmp_path):
    """Through mmengine's DDP wrapper (one gloo process on the CPU)."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    if dist.is_initialized():
        pytest.skip('a process group is already running in this process')
    dist.init_process_group(
        'gloo',
        init_method=f'file://{tmp_path / "store"}',
        rank=0,
        world_size=1)
    try:
        model = build('vit')
        reference = build('vit', type='STAViT', drop_number=4)
        wrapped = MMDistributedDataParallel(module=model, device_ids=None)
        hook = STAPruningHook(drop_number=4)
        hook.before_test(fake_runner(wrapped, model_cfg('vit'), [hook]))
        assert unwrap(wrapped) is model
        assert type(model.backbone) is STAViT
        data = dict(
            inputs=[
                torch.randint(
                    0,
                    255, (1, 3, 16, 64, 64),
                    generator=torch.Generator().manual_seed(i)).float()
                for i in range(2)
            ],
            data_samples=None)
        with torch.no_grad():
            x = wrapped.module.data_preprocessor(data)['inputs']
            x = x.view((-1, ) + x.shape[2:])
            assert torch.equal(
                wrapped.module.backbone(x), reference.backbone(x))
    finally:
        dist.destroy_process_group()


def test_report_hook_after_the_hook_reports_the_pruned_model():
    model = build('vit')
    pruner, plain = STAPruningHook(drop_number=4), STAReportHook()
    runner = fake_runner(model, model_cfg('vit'), [pruner, plain])
    pruner.before_test(runner)
    plain.before_test(runner)
    plain.before_test_iter(runner, 0, dict(inputs=[view('vit', b=3)]))
    assert plain.report['tokens'] == [128, 96, 80, 72]
    assert not hasattr(pruner, 'report')  # it only converts

    # a report hook that would run first would see the unpruned model
    model = build('vit')
    pruner, plain = STAPruningHook(drop_number=4), STAReportHook()
    runner = fake_runner(model, model_cfg('vit'), [plain, pruner])
    with pytest.raises(ValueError, match='runs before STAPruningHook'):
        pruner.before_test(runner)
    assert type(model.backbone) is VisionTransformer


def test_hook_reads_no_config():
    """A runner given the model as a module has no model.backbone config."""
    model = build('swin')
    hook = STAPruningHook(drop_number=16)
    hook.before_test(SimpleNamespace(model=model, cfg=Config(), hooks=[]))
    assert type(model.backbone) is STASwin3D
    assert model.backbone.drop_number == 16


def test_hook_is_registered_and_runs_before_report_hooks():
    hook = HOOKS.build(dict(type='STAPruningHook', drop_number=64))
    assert isinstance(hook, STAPruningHook)
    from mmengine.runner.priority import get_priority
    assert get_priority(hook.priority) < get_priority(STAReportHook.priority)


def test_other_backbone_is_a_clear_error():
    model = SimpleNamespace(backbone=nn.Conv3d(3, 8, 1))
    hook = STAPruningHook(drop_number=4)
    with pytest.raises(ValueError, match='cannot prune a .*Conv3d.*STAViT'):
        hook.before_test(fake_runner(model, dict(backbone=dict()), [hook]))

    class MyViT(VisionTransformer):
        pass

    with pytest.raises(ValueError, match='MyViT'):
        convert_backbone(
            MyViT(**{
                k: v
                for k, v in VIT.items() if k != 'type'
            }), 4)


@pytest.mark.parametrize('case, strategy', [('vit', 'random'),
                                            ('vit', 'tome'),
                                            ('swin', 'random'),
                                            ('swin', 'semantic')])
def test_hook_strategy_equals_sta_backbone(case, strategy):
    """The hook's strategy and seed reach the backbone; a second
    conversion with another strategy switches it."""
    r = CASES[case]['r']
    stock = build(case)
    sta_type = 'STAViT' if case == 'vit' else 'STASwin3D'
    reference = build(
        case, type=sta_type, drop_number=r, strategy=strategy, seed=2)
    hook = STAPruningHook(drop_number=r, strategy=strategy, seed=2)
    hook.before_test(fake_runner(stock, model_cfg(case), [hook]))
    assert (stock.backbone.strategy, stock.backbone.seed) == (strategy, 2)
    x = view(case)
    with torch.no_grad():
        assert torch.equal(stock.backbone(x), reference.backbone(x))
        convert_backbone(stock.backbone, r, 'sta')
        assert stock.backbone.strategy == 'sta'
        sta = build(case, type=sta_type, drop_number=r)
        assert torch.equal(stock.backbone(x), sta.backbone(x))


def test_hook_strategy_errors():
    with pytest.raises(ValueError, match="strategy='best' is not a"):
        STAPruningHook(drop_number=4, strategy='best')
    with pytest.raises(ValueError, match='seed=0.5 must be an int'):
        STAPruningHook(drop_number=4, strategy='random', seed=0.5)
    model = build('swin')
    hook = STAPruningHook(drop_number=16, strategy='tome')
    with pytest.raises(ValueError, match="strategy='tome' is not available"):
        hook.before_test(fake_runner(model, model_cfg('swin'), [hook]))
    assert type(model.backbone) is not STASwin3D


@pytest.mark.parametrize('drop_number', [-1, 2.5, True])
def test_bad_drop_number(drop_number):
    with pytest.raises(ValueError, match='drop_number'):
        STAPruningHook(drop_number=drop_number)


def test_sta_checks_apply_and_leave_the_model_alone():
    """r too large for the grid: the STA class's own error, model intact."""
    model = build('vit')
    hook = STAPruningHook(drop_number=9)  # 16 tokens per slice: at most 8
    with pytest.raises(ValueError, match='largest allowed drop_number'):
        hook.before_test(fake_runner(model, model_cfg('vit'), [hook]))
    assert type(model.backbone) is VisionTransformer

    feat_map = build('vit', return_feat_map=True).backbone
    with pytest.raises(ValueError, match='return_feat_map'):
        convert_backbone(feat_map, 4)
    assert type(feat_map) is VisionTransformer


@pytest.mark.parametrize('case', ['vit', 'swin'])
def test_convert_builds_nothing_and_draws_nothing(case):
    """No config, no probe: the global RNG is untouched, and the result is
    the STA backbone built with the same settings and weights."""
    r = CASES[case]['r']
    stock = build(case)
    sta_type = 'STAViT' if case == 'vit' else 'STASwin3D'
    reference = build(case, type=sta_type, drop_number=r, strategy='random',
                      seed=3)
    reference.load_state_dict(stock.state_dict(), strict=True)
    torch.manual_seed(11)
    state = torch.get_rng_state()
    convert_backbone(stock.backbone, r, 'random', 3)
    assert torch.equal(torch.get_rng_state(), state)
    x = view(case)
    with torch.no_grad():
        assert torch.equal(stock.backbone(x), reference.backbone(x))


@pytest.mark.slow
def test_convert_vit_large_is_instant():
    """Converting swaps a class and sets a few attributes: no ViT-L build."""
    import time
    torch.manual_seed(0)
    big = VisionTransformer(embed_dims=1024, depth=24, num_heads=16)
    start = time.perf_counter()
    convert_backbone(big, 64)
    assert time.perf_counter() - start < 1.0
    assert type(big) is STAViT and big.token_counts()[-1] == 1568 - 14 * 64


@pytest.mark.parametrize('call, match', [
    (lambda bb: convert_backbone(bb, 4, prop_atn=False),
     r'convert_backbone \(to STAViT\) got an unknown setting '
     'prop_atn=False; did you mean prop_attn\\?'),
    (lambda bb: convert_backbone(bb, 4, drop_numbr=4),
     'unknown setting drop_numbr=4; did you mean drop_number'),
])
def test_convert_names_unknown_settings(call, match):
    model = build('vit')
    with pytest.raises(ValueError, match=match):
        call(model.backbone)
    assert type(model.backbone) is VisionTransformer


def test_convert_setting_of_the_other_backbone():
    model = build('swin')
    with pytest.raises(ValueError, match='STASwin3D.*prop_attn=False'):
        convert_backbone(model.backbone, 16, prop_attn=False)
    assert type(model.backbone) is not STASwin3D
    model = build('vit')
    convert_backbone(model.backbone, 4, 'tome', prop_attn=False)
    assert model.backbone.prop_attn is False


@pytest.mark.parametrize('cfg, match', [
    (dict(drop_numbr=48), 'STAPruningHook got an unknown argument '
     'drop_numbr=48; did you mean drop_number\\?'),
    (dict(drop_number=48, strategie='random'), 'did you mean strategy'),
    (dict(), 'STAPruningHook needs drop_number'),
])
def test_hook_names_unknown_arguments(cfg, match):
    with pytest.raises(ValueError, match=match):
        HOOKS.build(dict(type='STAPruningHook', **cfg))


def test_hook_passes_settings_on():
    model = build('vit')
    hook = HOOKS.build(
        dict(type='STAPruningHook', drop_number=4, strategy='tome',
             prop_attn=False))
    hook.before_test(fake_runner(model, model_cfg('vit'), [hook]))
    assert (model.backbone.strategy, model.backbone.prop_attn) == ('tome',
                                                                   False)


# ---------------------------------------------------------------------------
# End to end: tools/test.py on a stock MMAction2 config + the hook
# ---------------------------------------------------------------------------
STOCK_CONFIGS = {
    'vit':
    'mmaction::recognition/videomae/'
    'vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py',
    'swin':
    'mmaction::recognition/swin/'
    'swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py',
}
#: Only the size changes; the stock model, pipeline and protocol stay.
TINY = {
    'vit':
    dict(
        backbone=dict(embed_dims=48, depth=6, num_heads=4),
        head=48,
        clip=dict(clip_len=16, frame_interval=4),
        size=224),
    'swin':
    dict(
        backbone=dict(
            arch=dict(
                _delete_=True,
                embed_dims=24,
                depths=[2, 2, 2, 2],
                num_heads=[1, 2, 2, 4]),
            window_size=(2, 4, 4)),
        head=192,
        clip=dict(clip_len=8, frame_interval=2),
        size=64),
}
E2E_R = {'vit': 64, 'swin': 16}


def write_config(path, case, data, backbone=None, hooks=None):
    """A stock config made tiny, on the generated clips.

    Args:
        backbone (dict): More backbone overrides (the STA type).
        hooks (list[dict]): ``custom_hooks``.
    """
    tiny = TINY[case]
    size = tiny['size']
    text = textwrap.dedent(f"""
        _base_ = ['{STOCK_CONFIGS[case]}']
        custom_imports = dict(imports=['sta_mmaction'],
                              allow_failed_imports=False)
        model = dict(
            backbone={dict(tiny['backbone'], **(backbone or {}))!r},
            cls_head=dict(in_channels={tiny['head']}))
        test_pipeline = [
            dict(type='DecordInit'),
            dict(type='SampleFrames', num_clips=1, test_mode=True,
                 **{tiny['clip']!r}),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(-1, {size})),
            dict(type='ThreeCrop', crop_size={size}),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs')
        ]
        test_dataloader = dict(
            num_workers=0,
            persistent_workers=False,
            dataset=dict(
                ann_file='{data["ann_file"]}',
                data_prefix=dict(video='{data["video_root"]}'),
                pipeline=test_pipeline))
        """)
    if hooks is not None:
        text += f'custom_hooks = {hooks!r}\n'
    path.write_text(text)
    return str(path)


def run_test_py(config, ckpt, work_dir, dump):
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), config, ckpt, '--work-dir',
        str(work_dir), '--dump',
        str(dump)
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    [metrics_file] = glob.glob(str(work_dir / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.loads(f.read().splitlines()[-1])
    with open(dump, 'rb') as f:
        scores = torch.stack([s['pred_score'] for s in pickle.load(f)])
    return metrics, scores, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    return make_k400_set(
        str(tmp_path_factory.mktemp('clips')), num_clips_per_class=1)


@pytest.mark.parametrize('case', ['vit', 'swin'])
def test_stock_config_with_hook_equals_sta_config(case, clips, tmp_path):
    r = E2E_R[case]
    sta_type = 'STAViT' if case == 'vit' else 'STASwin3D'
    hooked = write_config(
        tmp_path / 'stock_hook.py',
        case,
        clips,
        hooks=[dict(type='STAPruningHook', drop_number=r)])
    sta = write_config(
        tmp_path / 'sta.py',
        case,
        clips,
        backbone=dict(type=sta_type, drop_number=r))
    cfg = Config.fromfile(hooked)
    assert cfg.model.backbone.type in ('VisionTransformer',
                                       'SwinTransformer3D')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = save_mmengine_checkpoint(model.state_dict(), tmp_path / 'w.pth')

    got, got_scores, log = run_test_py(hooked, ckpt, tmp_path / 'hook',
                                       tmp_path / 'hook.pkl')
    want, want_scores, _ = run_test_py(sta, ckpt, tmp_path / 'sta',
                                       tmp_path / 'sta.pkl')
    assert f'-> {sta_type} with drop_number={r}' in log
    assert torch.equal(got_scores, want_scores)
    for key in ('acc/top1', 'acc/top5', 'acc/mean1', 'gflops_per_view',
                'params_m', 'tokens'):
        assert got[key] == want[key], key
    assert got['tokens'][-1] < got['tokens'][0]


def test_convert_keeps_the_backbone_strategy():
    """Without a strategy of its own, conversion keeps the backbone's."""
    cfg = model_cfg('vit', type='STAViT', drop_number=0, strategy='random',
                    seed=1)
    model = MODELS.build(cfg).eval()
    convert_backbone(model.backbone, 4)
    assert (model.backbone.strategy, model.backbone.seed) == ('random', 1)
    hook = STAPruningHook(drop_number=4)
    hook.before_test(fake_runner(model, cfg, [hook]))
    assert (model.backbone.strategy, model.backbone.seed) == ('random', 1)
