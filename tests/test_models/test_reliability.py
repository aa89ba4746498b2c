"""Reliability of the backbones beyond test_sta_vit.py / test_sta_swin.py.

* Every bad setting or clip raises a ``ValueError`` from our own checks,
  before any torch op could fail with a shape error, and its message names
  the setting, the value given and what is allowed.
* A constant (black) clip keeps every semantic score finite in float32 and
  under fp16/bf16 autocast, through whole models.
* The kept token positions are deterministic and batch independent, and so
  is a recognizer's prediction.
"""
import os.path as osp

import pytest
import torch
from mmaction.registry import MODELS

import sta_mmaction.core.sta as sta_core
from sta_mmaction.models import STASwin3D, STAViT

from .test_sta_swin import SMALL as SWIN_SMALL
from .test_sta_vit import SMALL

#: Where our checks live: a ValueError must be raised from one of these.
OUR_CODE = (osp.join('sta_mmaction', 'core'),
            osp.join('sta_mmaction', 'models'))


def raised_by_our_check(excinfo):
    """Raised in our code, with no torch op entered from our code on.

    (``nn.Module.__call__`` around the forward is allowed: it is the caller,
    not a reshape.)
    """
    frames = [str(entry.path) for entry in excinfo.traceback]
    ours = [any(part in f for part in OUR_CODE) for f in frames]
    assert ours[-1], f'raised outside our checks: {frames[-1]}'
    torch_dir = osp.dirname(torch.__file__)
    after = frames[ours.index(True):]
    assert not any(f.startswith(torch_dir) for f in after), after


def assert_names(msg, *parts):
    for part in parts:
        assert part in msg, f'{part!r} not in: {msg}'


# --- bad settings and clips: STAViT -----------------------------------------


@pytest.mark.parametrize('kwargs, parts', [
    (dict(drop_number=-3), ('drop_number=-3', 'must be >= 0')),
    (dict(drop_number=9), ('drop_number=9', '8 slices x 16 tokens',
                           'largest allowed drop_number is 8')),
    (dict(drop_number=2, num_frames=12),
     ('num_frames / tubelet_size = 6', 'multiple of 4')),
    # the stock model keeps 15 // 2 = 7 slices of a 15-frame clip
    (dict(drop_number=2, num_frames=15),
     ('num_frames / tubelet_size = 7', 'multiple of 4')),
    (dict(drop_number=2.0), ('drop_number must be an int', '2.0')),
])
def test_vit_bad_settings_name_value_and_allowed(kwargs, parts):
    cfg = dict(SMALL, **kwargs)
    with pytest.raises(ValueError) as err:
        STAViT(**cfg)
    assert_names(str(err.value), *parts)
    raised_by_our_check(err)


def test_vit_bad_setting_through_the_registry():
    """Built from a config, the message survives mmengine's re-raise."""
    cfg = dict(
        type='Recognizer3D',
        backbone=dict(type='STAViT', **SMALL, drop_number=40),
        cls_head=dict(type='TimeSformerHead', num_classes=5, in_channels=48))
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg)
    assert_names(
        str(err.value), 'drop_number=40', 'largest allowed drop_number is 8')


@pytest.mark.parametrize('shape, parts', [
    ((1, 3, 8, 64, 64), ('16 frames', '(C, T, H, W) = (3, 8, 64, 64)')),
    ((1, 1, 16, 64, 64), ('3 channels', '(C, T, H, W) = (1, 16, 64, 64)')),
    ((1, 3, 16, 72, 64), ('patch_size=16', '(C, T, H, W) = (3, 16, 72, 64)')),
    ((1, 3, 16, 32, 32), ('drop_number=4', '8 slices x 4 tokens',
                          'largest allowed drop_number is 2')),
    ((3, 16, 64, 64), ('(B, C, T, H, W)', '(3, 16, 64, 64)')),
])
def test_vit_bad_clip_name_value_and_allowed(shape, parts):
    vit = STAViT(**SMALL, drop_number=4).eval()
    with pytest.raises(ValueError) as err:
        vit(torch.zeros(shape))
    assert_names(str(err.value), *parts)
    raised_by_our_check(err)


@pytest.mark.parametrize('shape', [(1, 3, 8, 64, 64), (1, 1, 16, 64, 64)])
def test_vit_bad_clip_unpruned(shape):
    vit = STAViT(**SMALL, drop_number=0).eval()
    with pytest.raises(ValueError) as err:
        vit(torch.zeros(shape))
    raised_by_our_check(err)


# --- bad settings and clips: STASwin3D --------------------------------------


@pytest.mark.parametrize('r, shape, parts', [
    (-3, None, ('drop_number=-3', 'must be >= 0')),
    (33, (1, 3, 8, 64, 64), ('drop_number=33', '(T, H, W) = (8, 64, 64)',
                             'largest allowed drop_number for this clip '
                             'size is 32')),
    (16, (1, 3, 12, 64, 64), ('drop_number=16', 'ceil(12 / 2) = 6',
                              'multiple of 4')),
    (16, (1, 1, 8, 64, 64), ('in_channels=3', '(1, 8, 64, 64)')),
])
def test_swin_bad_cases_raise_before_any_reshape(r, shape, parts):
    with pytest.raises(ValueError) as err:
        swin = STASwin3D(**SWIN_SMALL, drop_number=r).eval()
        swin(torch.zeros(shape))
    assert_names(str(err.value), *parts)
    raised_by_our_check(err)


# --- numerical safety: a constant clip ---------------------------------------


@pytest.fixture
def record_semantic(monkeypatch):
    """Record every semantic score the rule computes."""
    seen = []
    real = sta_core.semantic_activation

    def recording(x, num_groups):
        out = real(x, num_groups)
        seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(sta_core, 'semantic_activation', recording)
    return seen


def autocast(dtype):
    if dtype is None:
        return torch.autocast('cpu', enabled=False)
    return torch.autocast('cpu', dtype=dtype)


DTYPES = [None, torch.float16, torch.bfloat16]
DTYPE_IDS = ['float32', 'fp16-autocast', 'bf16-autocast']


@pytest.mark.parametrize('dtype', DTYPES, ids=DTYPE_IDS)
def test_vit_constant_clip_is_finite(dtype, record_semantic):
    """Without positions every token of a black clip is the same token.

    Zeroed position embeddings make every group's activations equal at every
    prune point, the ``0 / 0`` case of a plain min-max.
    """
    torch.manual_seed(0)
    vit = STAViT(**SMALL, drop_number=6).eval()
    vit.pos_embed.data.zero_()
    black = torch.zeros(2, 3, 16, 64, 64)
    with torch.no_grad(), autocast(dtype):
        feats, kept = vit.forward_pruned(black)
    assert len(record_semantic) == 3
    for sem in record_semantic:
        assert sem.dtype == torch.float32
        assert torch.equal(sem, torch.zeros_like(sem))  # no contrast, no NaN
    assert torch.isfinite(feats).all()
    for idx in kept:
        assert all(len(set(row.tolist())) == idx.shape[1] for row in idx)


@pytest.mark.parametrize('dtype', DTYPES, ids=DTYPE_IDS)
def test_recognizer_black_clip_is_finite(dtype, record_semantic):
    """uint8 zeros through the data preprocessor, backbone and head."""
    torch.manual_seed(0)
    model = build_recognizer(drop_number=6)
    data = dict(
        inputs=[torch.zeros(1, 3, 16, 64, 64, dtype=torch.uint8)],
        data_samples=[labelled(0)])
    with torch.no_grad(), autocast(dtype):
        [out] = model.test_step(data)
    assert record_semantic and all(
        torch.isfinite(s).all() for s in record_semantic)
    assert torch.isfinite(out.pred_score).all()
    assert float(out.pred_score.sum()) == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize('dtype', DTYPES, ids=DTYPE_IDS)
def test_swin_constant_clip_is_finite(dtype, record_semantic):
    torch.manual_seed(0)
    swin = STASwin3D(**SWIN_SMALL, drop_number=16).eval()
    with torch.no_grad(), autocast(dtype):
        feats, _ = swin.forward_pruned(torch.zeros(2, 3, 8, 64, 64))
    assert record_semantic
    for sem in record_semantic:
        assert torch.isfinite(sem).all()
        assert float(sem.min()) >= 0 and float(sem.max()) <= 1
    assert torch.isfinite(feats).all()


# --- determinism and batch independence --------------------------------------


def build_recognizer(drop_number):
    model = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(type='STAViT', **SMALL, drop_number=drop_number),
            cls_head=dict(
                type='TimeSformerHead',
                num_classes=5,
                in_channels=48,
                average_clips='prob'),
            data_preprocessor=dict(
                type='ActionDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                format_shape='NCTHW')))
    return model.eval()


def labelled(label):
    from mmaction.structures import ActionDataSample
    return ActionDataSample().set_gt_label(label)


def moving_clips(n, seed=0):
    """uint8 (1, 3, 16, 64, 64) clips: a bright square moving on noise."""
    gen = torch.Generator().manual_seed(seed)
    clips = []
    for i in range(n):
        clip = torch.randint(0, 60, (1, 3, 16, 64, 64), generator=gen)
        for t in range(16):
            x = (3 * t + 7 * i) % 40
            clip[0, :, t, 10:30, x:x + 20] = 200 + i
        clips.append(clip.to(torch.uint8))
    return clips


def test_vit_kept_tokens_deterministic_and_batch_independent():
    torch.manual_seed(0)
    vit = STAViT(**SMALL, drop_number=6).eval()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 3, 16, 64, 64, generator=gen)
    with torch.no_grad():
        _, first = vit.forward_pruned(x)
        _, again = vit.forward_pruned(x)
        alone = [vit.forward_pruned(x[i:i + 1])[1] for i in range(3)]
    for p in range(3):
        assert torch.equal(first[p], again[p])
        for i in range(3):
            assert torch.equal(first[p][i], alone[i][p][0])


def test_swin_kept_tokens_deterministic_and_batch_independent():
    torch.manual_seed(0)
    swin = STASwin3D(**SWIN_SMALL, drop_number=16).eval()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 3, 8, 64, 64, generator=gen)
    with torch.no_grad():
        _, first = swin.forward_pruned(x)
        _, again = swin.forward_pruned(x)
        alone = [swin.forward_pruned(x[i:i + 1])[1] for i in range(3)]
    assert len(first) == 3
    for p in range(len(first)):
        assert torch.equal(first[p], again[p])
        for i in range(3):
            assert torch.equal(first[p][i], alone[i][p][0])


def test_recognizer_prediction_alone_or_in_batch():
    """A clip's prediction through the whole recognizer, to 1e-5."""
    torch.manual_seed(0)
    model = build_recognizer(drop_number=6)
    clips = moving_clips(3)
    with torch.no_grad():
        batch = model.test_step(
            dict(inputs=clips, data_samples=[labelled(i) for i in range(3)]))
        alone = [
            model.test_step(dict(inputs=[c], data_samples=[labelled(i)]))[0]
            for i, c in enumerate(clips)
        ]
    for b, a in zip(batch, alone):
        torch.testing.assert_close(
            b.pred_score, a.pred_score, atol=1e-5, rtol=1e-5)
    # the clips differ, so equal scores are not a degenerate model's
    assert not torch.allclose(batch[0].pred_score, batch[1].pred_score)


# --- unknown arguments: named, with the closest known one --------------------


def unknown_cases():
    cases = [(STAViT, SMALL, 'drop_numbr', 48, 'drop_number'),
             (STAViT, SMALL, 'embed_dim', 64, 'embed_dims'),
             (STAViT, SMALL, 'prop_atn', False, 'prop_attn')]
    if STASwin3D is not None:
        cases += [(STASwin3D, SWIN_SMALL, 'drop_numbr', 16, 'drop_number'),
                  (STASwin3D, SWIN_SMALL, 'patch_sise', (2, 4, 4),
                   'patch_size')]
    return cases


@pytest.mark.parametrize('cls, cfg, key, value, close', unknown_cases())
def test_unknown_argument_names_the_closest(cls, cfg, key, value, close):
    """MMAction2's VisionTransformer swallows unknown keys (Swin raises a
    TypeError); the STA classes name them."""
    with pytest.raises(ValueError) as err:
        cls(**cfg, **{key: value})
    assert str(err.value) == (f'{cls.__name__} got an unknown argument '
                              f'{key}={value!r}; did you mean {close}?')
    raised_by_our_check(err)


def test_unknown_argument_from_cfg_options():
    """``--cfg-options model.backbone.drop_numbr=48`` no longer runs at the
    config's r."""
    from mmengine.config import Config
    cfg = Config(
        dict(
            model=dict(
                type='Recognizer3D',
                backbone=dict(type='STAViT', **SMALL, drop_number=4),
                cls_head=dict(
                    type='TimeSformerHead', num_classes=5, in_channels=48))))
    cfg.merge_from_dict({'model.backbone.drop_numbr': 48})
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg.model)
    assert_names(
        str(err.value), 'STAViT got an unknown argument drop_numbr=48; did '
        'you mean drop_number?')


def test_unknown_argument_without_a_close_one_lists_them():
    with pytest.raises(ValueError) as err:
        STAViT(**SMALL, qqqqqq=1)
    assert_names(
        str(err.value), 'qqqqqq=1', 'the accepted ones are',
        'drop_number', 'embed_dims', 'prop_attn', 'use_mean_pooling')


def test_init_sta_checks_before_it_sets():
    vit = STAViT(**SMALL, drop_number=4, strategy='random', seed=1)
    with pytest.raises(ValueError, match='did you mean prop_attn'):
        vit.init_sta(6, prop_atn=False)
    with pytest.raises(ValueError, match='largest allowed drop_number'):
        vit.init_sta(9, 'sta')
    assert (vit.drop_number, vit.strategy, vit.seed) == (4, 'random', 1)


def test_swin_init_sta_has_no_prop_attn():
    swin = STASwin3D(**SWIN_SMALL)
    with pytest.raises(ValueError) as err:
        swin.init_sta(16, prop_attn=True)
    assert_names(str(err.value), 'STASwin3D got an unknown setting '
                 'prop_attn=True', 'the accepted ones are drop_number, '
                 'fused_attention, seed, strategy.')
    assert swin.drop_number == 0
