"""Checkpoint loading never runs code from the file unless told to.

Checkpoints that mmengine writes load by default, through mmengine's own
loader and through ``tools/test.py``; a pickle whose ``__reduce__`` writes a
file is refused (the file stays unwritten) unless the user opts in; and
``tools/test.py`` is loud about backbone keys that do not fit.
"""
import os
import os.path as osp
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

from sta_mmaction.utils import (UNSAFE_ENV, UnsafeCheckpointError,
                                load_checkpoint_file, set_unsafe_full_unpickle)
from sta_mmaction.utils.checkpoint import _history_buffer_getattr
from sta_mmaction.utils.mmaction_compat import drn_is_missing
from ..conftest import ROOT, save_mmengine_checkpoint
from ..test_tools.test_dist_test import (make_video_set, run_test_py,
                                         tiny_checkpoint, write_tiny_config)


class WritesMarker:
    """Unpickling this writes ``path``: stands in for any payload."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.path, 'code ran'))


class GetattrChain:
    """``getattr(obj, name)`` at unpickling, via the allow-listed getattr."""

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


def tiny_state():
    torch.manual_seed(0)
    return {'backbone.w': torch.randn(3, 4), 'cls_head.b': torch.zeros(2)}


def malicious(path, marker, legacy=False, payload=None):
    """A checkpoint with real tensors plus a payload that writes ``marker``."""
    obj = dict(
        state_dict=tiny_state(),
        meta=dict(epoch=1),
        payload=payload or WritesMarker(marker))
    torch.save(obj, str(path), _use_new_zipfile_serialization=not legacy)
    return str(path)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """A checkpoint written by a real (tiny) mmengine Runner training run."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, inputs, labels, mode='tensor'):
            out = self.fc(inputs)
            if mode == 'loss':
                return dict(loss=torch.nn.functional.cross_entropy(
                    out, labels))
            return out

    class Toys(Dataset):
        metainfo = dict(classes=('a', 'b'))

        def __len__(self):
            return 8

        def __getitem__(self, i):
            return dict(inputs=torch.full((4, ), float(i)), labels=i % 2)

    work_dir = tmp_path_factory.mktemp('runner')
    runner = Runner(
        model=Toy(),
        work_dir=str(work_dir),
        experiment_name=f'ckpt-safety-{os.getpid()}',
        train_dataloader=dict(
            dataset=Toys(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1]),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0),
        default_scope='mmaction')
    runner.train()
    path = work_dir / 'epoch_1.pth'
    assert path.is_file()
    return str(path), {
        k: v.clone()
        for k, v in runner.model.state_dict().items()
    }


@pytest.fixture
def mmengine_checkpoint(tmp_path):
    return save_mmengine_checkpoint(tiny_state(), tmp_path / 'mm.pth')


def test_stock_torch_refuses_mmengine_checkpoints(mmengine_checkpoint,
                                                  runner_checkpoint):
    """Without the allow-list, torch's weights-only loader refuses both."""
    code = ('import sys, torch\n'
            'for p in sys.argv[1:]:\n'
            '    try:\n'
            '        torch.load(p)\n'
            '    except Exception as e:\n'
            '        print("refused", type(e).__name__)\n'
            '    else:\n'
            '        print("loaded")\n')
    out = subprocess.run(
        [sys.executable, '-c', code, mmengine_checkpoint,
         runner_checkpoint[0]],
        capture_output=True,
        text=True,
        check=True).stdout.split('\n')
    assert out[:2] == ['refused UnpicklingError'] * 2


def test_mmengine_checkpoint_loads_by_default(mmengine_checkpoint):
    ckpt = _load_checkpoint(mmengine_checkpoint, map_location='cpu')
    for key, value in tiny_state().items():
        assert torch.equal(ckpt['state_dict'][key], value)
    assert isinstance(ckpt['meta']['seed'], np.integer)
    hub = ckpt['message_hub']['log_scalars']
    assert isinstance(hub['train/loss'], HistoryBuffer)
    assert hub['train/loss'].mean() == pytest.approx(0.25)


def test_runner_checkpoint_loads_by_default(runner_checkpoint):
    path, state = runner_checkpoint
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert set(ckpt) >= {
        'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'
    }
    for key, value in state.items():
        assert torch.equal(ckpt['state_dict'][key], value)
    # the restricted getattr rebuilt HistoryBuffer's statistics table
    buf = next(iter(ckpt['message_hub']['log_scalars'].values()))
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(float(np.mean(buf.data[0])))


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
def test_malicious_pickle_refused_by_default(tmp_path, legacy, monkeypatch):
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    marker = tmp_path / 'PWNED'
    path = malicious(tmp_path / 'evil.pth', marker, legacy)
    model = torch.nn.Linear(4, 3)
    for load in (lambda: _load_checkpoint(path),
                 lambda: load_checkpoint(model, path),
                 lambda: load_checkpoint_file(path)):
        with pytest.raises(UnsafeCheckpointError) as err:
            load()
        assert not marker.exists()
        msg = str(err.value)
        assert path in msg
        assert f'{UNSAFE_ENV}=1' in msg and '--unsafe-full-unpickle' in msg
    assert isinstance(err.value, pickle.UnpicklingError)


@pytest.mark.parametrize('how', ['env', 'argument', 'setter'])
def test_malicious_pickle_runs_only_with_opt_in(tmp_path, how, monkeypatch):
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    marker = tmp_path / 'PWNED'
    path = malicious(tmp_path / 'evil.pth', marker)
    if how == 'env':
        monkeypatch.setenv(UNSAFE_ENV, '1')
        ckpt = _load_checkpoint(path)
    elif how == 'argument':
        ckpt = load_checkpoint_file(path, unsafe_full_unpickle=True)
    else:
        set_unsafe_full_unpickle(True)
        try:
            ckpt = _load_checkpoint(path)
        finally:
            set_unsafe_full_unpickle(False)
        assert UNSAFE_ENV not in os.environ
    assert marker.read_text() == 'code ran'
    assert torch.equal(ckpt['state_dict']['backbone.w'],
                       tiny_state()['backbone.w'])


def test_restricted_getattr_allows_only_statistics():
    for name in ('min', 'max', 'mean', 'current'):
        assert _history_buffer_getattr(HistoryBuffer, name) is getattr(
            HistoryBuffer, name)
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer,
                                                    'update'),
                      (HistoryBuffer, '__class__'), (np.ndarray, 'tofile'),
                      (os, 'system'), (pathlib.Path, 'write_text')):
        with pytest.raises(UnsafeCheckpointError, match='refused getattr'):
            _history_buffer_getattr(obj, name)


@pytest.mark.parametrize('obj, name', [(np.ndarray, 'tofile'),
                                       (HistoryBuffer, 'update'),
                                       (HistoryBuffer, '__reduce_ex__')])
def test_getattr_chain_in_a_file_is_refused(tmp_path, obj, name):
    """A file that reaches other attributes through getattr is refused."""
    path = tmp_path / 'chain.pth'
    torch.save(dict(state_dict={}, x=GetattrChain(obj, name)), str(path))
    with pytest.raises(UnsafeCheckpointError, match='refused getattr'):
        _load_checkpoint(str(path))


def test_mmcls_scheme_is_safe_too(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import get_mmcls_models
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = get_mmcls_models()['vgg11']
    cache = pathlib.Path(torch.hub.get_dir()) / 'checkpoints'
    cache.mkdir(parents=True)
    marker = tmp_path / 'PWNED'
    # already "downloaded": no network is touched
    malicious(cache / osp.basename(url), marker)
    try:
        _load_checkpoint('mmcls://vgg11')
    except UnsafeCheckpointError:
        pass
    assert not marker.exists()


def test_mmaction_models_import_after_sta_mmaction():
    code = ('import sta_mmaction, mmaction.models\n'
            'from mmaction.registry import MODELS\n'
            'assert MODELS.get("Recognizer3D") and MODELS.get("STAViT")\n')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)
    if not drn_is_missing():
        pytest.skip('this mmaction install has models/localizers/drn')
    bare = subprocess.run([sys.executable, '-c', 'import mmaction.models'],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    assert bare.returncode != 0 and 'drn' in bare.stderr


# --- tools/test.py -------------------------------------------------------


@pytest.fixture(scope='module')
def tiny_tool(tmp_path_factory):
    """Three generated clips, the tiny STAViT config and its checkpoint."""
    root = tmp_path_factory.mktemp('ckpt_tool')
    ann, videos = make_video_set(root / 'videos', labels=[1, 2, 3])
    config = write_tiny_config(root / 'tiny_sta.py', ann, videos)
    ckpt = tiny_checkpoint(config, root / 'good.pth')
    return dict(
        root=root,
        config=config,
        ckpt=ckpt,
        state=torch.load(ckpt)['state_dict'])


def save_variant(tiny_tool, name, **edits):
    """The tiny checkpoint with keys dropped (``drop``) or added (``add``)."""
    state = dict(tiny_tool['state'])
    for key in edits.get('drop', ()):
        del state[key]
    state.update(edits.get('add', {}))
    return save_mmengine_checkpoint(state, tiny_tool['root'] / name)


def test_tools_loads_mmengine_checkpoint_and_logs_unexpected(
        tiny_tool, tmp_path):
    ckpt = save_variant(
        tiny_tool,
        'extra.pth',
        add={
            'backbone.sta_extra.weight': torch.zeros(2),
            'neck.unused': torch.zeros(1)
        })
    proc = run_test_py(tiny_tool['config'], ckpt, tmp_path)
    log = proc.stdout + proc.stderr
    assert 'The checkpoint has 1 backbone keys the model does not: ' \
        'backbone.sta_extra.weight' in log
    assert 'acc/top1' in log


def test_tools_fails_on_missing_backbone_weights(tiny_tool, tmp_path):
    missing = [
        'backbone.blocks.0.attn.qkv.weight', 'backbone.patch_embed.'
        'projection.weight'
    ]
    assert all(k in tiny_tool['state'] for k in missing)
    ckpt = save_variant(tiny_tool, 'missing.pth', drop=missing)
    proc = run_test_py(tiny_tool['config'], ckpt, tmp_path, ok=False)
    assert proc.returncode != 0
    assert 'ValueError: The checkpoint lacks 2 of the model' in proc.stderr
    for key in missing:
        assert key in proc.stderr
    assert 'acc/top1' not in proc.stdout + proc.stderr


def test_tools_refuses_malicious_checkpoint(tiny_tool, tmp_path):
    marker = tmp_path / 'PWNED'
    ckpt = str(tmp_path / 'evil.pth')
    torch.save(
        dict(state_dict=tiny_tool['state'], evil=WritesMarker(marker)), ckpt)
    env_clean = {k: v for k, v in os.environ.items() if k != UNSAFE_ENV}
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), tiny_tool['config'], ckpt,
        '--work-dir',
        str(tmp_path / 'wd')
    ],
                          capture_output=True,
                          text=True,
                          errors='replace',
                          cwd=ROOT,
                          env=env_clean)
    assert proc.returncode != 0
    assert not marker.exists()
    assert 'UnsafeCheckpointError' in proc.stderr
    assert '--unsafe-full-unpickle' in proc.stderr

    # the explicit opt-in loads it (and so runs its code) and evaluates
    run_test_py(tiny_tool['config'], ckpt, tmp_path / 'wd2',
                '--unsafe-full-unpickle')
    assert marker.read_text() == 'code ran'
