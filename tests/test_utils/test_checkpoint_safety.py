"""Checkpoint loading never runs code from the file unless told to.

Checkpoints that mmengine writes load by default, through mmengine's own
loader and through ``tools/test.py``; a pickle whose ``__reduce__`` writes a
file is refused (the file stays unwritten) on every route mmengine knows,
even with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, unless the user opts in;
damaged or foreign files are one clear ``CheckpointError``; downloads are
cached per URL and fail with what to do; and ``tools/test.py`` stops on
checkpoint keys that do not fit.
"""
import os
import os.path as osp
import pathlib
import pickle
import socket
import subprocess
import sys
from http.client import IncompleteRead
from urllib.error import HTTPError, URLError

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

from sta_mmaction.utils import (UNSAFE_ENV, CheckpointError,
                                UnsafeCheckpointError, cached_path,
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
        # the refused global is named; torch's advice to switch the safety
        # off is not passed on
        assert 'GLOBAL pathlib.Path' in msg
        assert 'set to `False`' not in msg
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


# --- every route is weights-only --------------------------------------


class FakeBackend:
    """mmengine's petrel backend as far as the loader uses it."""

    def __init__(self, files):
        self.files = files

    def get(self, uri):
        return self.files[uri]


def fake_download(files, calls=None):
    """``torch.hub.download_url_to_file`` serving ``files`` (url -> bytes)."""

    def download(url, dst, hash_prefix=None, progress=True):
        if calls is not None:
            calls.append(url)
        with open(dst, 'wb') as f:
            f.write(files[url])

    return download


def load_route(route, evil, tmp_path, monkeypatch):
    """Load the file ``evil`` the way ``route`` does, with nothing online."""
    import sys
    import types

    from mmengine.runner import checkpoint as mm_checkpoint
    data = pathlib.Path(evil).read_bytes()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = 'https://download.example.org/evil_20220101-abcdef12.pth'
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        fake_download({url: data}))
    if route == 'local':
        return _load_checkpoint(evil)
    if route == 'http':
        return _load_checkpoint(url)
    if route in ('s3', 'petrel', 'cluster:s3'):
        uri = f'{route}://bucket/evil.pth'
        monkeypatch.setattr('mmengine.fileio.get_file_backend',
                            lambda *a, **k: FakeBackend({uri: data}))
        return _load_checkpoint(uri)
    if route == 'pavi':

        class Model:
            name = 'evil.pth'

            def download(self, dst):
                pathlib.Path(dst).write_bytes(data)

        pavi = types.ModuleType('pavi')
        pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
        monkeypatch.setitem(sys.modules, 'pavi', pavi)
        return _load_checkpoint('pavi://project/evil')
    if route in ('open-mmlab', 'open-mmlab-url', 'openmmlab'):
        home = tmp_path / 'mmengine_home'
        home.mkdir(exist_ok=True)
        (home / 'evil.pth').write_bytes(data)
        monkeypatch.setenv('MMENGINE_HOME', str(home))
        monkeypatch.setattr(
            mm_checkpoint, 'get_external_models',
            lambda: dict(evil='evil.pth', evil_url=url))
        name = 'evil_url' if route == 'open-mmlab-url' else 'evil'
        return _load_checkpoint(f'{route.replace("-url", "")}://{name}')
    if route == 'torchvision':
        monkeypatch.setattr(mm_checkpoint, 'get_torchvision_models',
                            lambda: dict(evil=url))
        return _load_checkpoint('torchvision://evil')
    assert route == 'mmcls'
    monkeypatch.setattr(mm_checkpoint, 'get_mmcls_models',
                        lambda: dict(evil=url))
    return _load_checkpoint('mmcls://evil')


ROUTES = [
    'local', 'http', 's3', 'petrel', 'cluster:s3', 'pavi', 'open-mmlab',
    'open-mmlab-url', 'openmmlab', 'torchvision', 'mmcls'
]


@pytest.mark.parametrize('force_no_weights_only', [False, True],
                         ids=['default', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'])
@pytest.mark.parametrize('route', ROUTES)
def test_every_route_refuses_a_payload(route, force_no_weights_only,
                                       tmp_path, monkeypatch):
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    marker = tmp_path / 'PWNED'
    evil = malicious(tmp_path / 'evil.pth', marker)
    if force_no_weights_only:
        monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(UnsafeCheckpointError):
        load_route(route, evil, tmp_path, monkeypatch)
    assert not marker.exists()


def test_the_torch_override_would_run_the_payload(tmp_path, monkeypatch):
    """So the test above can fail: the variable does unpickle fully where
    ``weights_only`` is not passed (mmengine's own loaders)."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'PWNED'
    with pytest.warns(UserWarning, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        torch.load(malicious(tmp_path / 'evil.pth', marker))
    assert marker.exists()


@pytest.mark.parametrize('route', ROUTES)
def test_every_route_loads_a_good_checkpoint(route, tmp_path, monkeypatch):
    """(The file and SHA-256 recorded for a run: test_checkpoint_hook.py.)"""
    good = save_mmengine_checkpoint(tiny_state(), tmp_path / 'good.pth')
    ckpt = load_route(route, good, tmp_path, monkeypatch)
    # mmcls:// drops the 'backbone.' prefix
    key = 'w' if route == 'mmcls' else 'backbone.w'
    assert torch.equal(ckpt['state_dict'][key], tiny_state()['backbone.w'])


# --- downloads ------------------------------------------------------------


def test_same_file_name_at_two_urls_never_shares_a_cache(
        tmp_path, monkeypatch):
    from sta_mmaction.utils import checkpoint as sta_checkpoint
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    first = 'https://a.example.org/models/vit_k400.pth'
    second = 'https://b.example.org/other/vit_k400.pth?download=1'
    states = {first: {'w': torch.zeros(2)}, second: {'w': torch.ones(2)}}
    files = {}
    for url, state in states.items():
        path = tmp_path / f'{len(files)}.pth'
        torch.save(dict(state_dict=state), path)
        files[url] = path.read_bytes()
    calls, logs = [], []
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        fake_download(files, calls))
    monkeypatch.setattr(sta_checkpoint, 'print_log',
                        lambda msg, **kw: logs.append(msg))
    for _ in range(2):  # the second round reads the caches
        for url, state in states.items():
            got = _load_checkpoint(url)['state_dict']['w']
            assert torch.equal(got, state['w']), url
    assert calls == [first, second]
    assert cached_path(first) != cached_path(second)
    assert osp.basename(cached_path(second)) == 'vit_k400.pth'
    assert any(cached_path(second) in m and second in m for m in logs)


@pytest.mark.parametrize('error, reason', [
    (URLError('[Errno -3] Temporary failure in name resolution'),
     '[Errno -3] Temporary failure in name resolution'),
    (HTTPError('u', 404, 'Not Found', None, None), 'HTTP 404 Not Found'),
    (socket.timeout('timed out'), 'TimeoutError: timed out'),
    (ConnectionResetError('reset by peer'),
     'ConnectionResetError: reset by peer'),
    (IncompleteRead(b'abc', 10), 'IncompleteRead'),
])
def test_failed_download_says_what_to_do_and_caches_nothing(
        error, reason, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = 'https://download.example.org/ckpt/vit_k400_20221013-860a3cd3.pth'

    def broken(url, dst, hash_prefix=None, progress=True):
        pathlib.Path(dst).write_bytes(b'PK\x03\x04 half a file')
        raise error

    monkeypatch.setattr(torch.hub, 'download_url_to_file', broken)
    with pytest.raises(CheckpointError) as err:
        _load_checkpoint(url)
    msg = str(err.value)
    assert '\n' not in msg
    assert msg.startswith(f'could not download {url} (')
    assert reason in msg
    assert msg.endswith(
        '; download it on a machine with internet and pass the local file: '
        'python tools/test.py CONFIG '
        '/path/to/vit_k400_20221013-860a3cd3.pth')
    cache = osp.dirname(cached_path(url))
    assert not osp.exists(cached_path(url)) and os.listdir(cache) == []

    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=tiny_state()), good)
    monkeypatch.setattr(torch.hub, 'download_url_to_file',
                        fake_download({url: good.read_bytes()}))
    assert torch.equal(
        _load_checkpoint(url)['state_dict']['backbone.w'],
        tiny_state()['backbone.w'])


# --- files that are not checkpoints ---------------------------------------


def write_bad(kind, path):
    good = path.with_name('good_' + path.name)
    torch.save(dict(state_dict=tiny_state()), good)
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'text':
        path.write_text('<html><body>502 Bad Gateway</body></html>\n')
    elif kind == 'truncated zip':
        path.write_bytes(good.read_bytes()[:300])
    elif kind == 'truncated legacy':
        torch.save(
            dict(state_dict=tiny_state()),
            good,
            _use_new_zipfile_serialization=False)
        path.write_bytes(good.read_bytes()[:150])
    elif kind == 'binary junk':
        path.write_bytes(bytes(range(256)) * 4)
    else:
        obj = {
            'bare tensor': torch.zeros(3),
            'list': [torch.zeros(3)],
            'state_dict list': dict(state_dict=[torch.zeros(3)]),
            'state_dict None': dict(state_dict=None),
            'int keys': dict(state_dict={101: torch.zeros(1)}),
            'top-level int keys': {101: torch.zeros(1)},
            'ndarray value': dict(state_dict=dict(w=np.zeros(3))),
        }[kind]
        torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize('kind, says', [
    ('empty', 'or is damaged (0 bytes); download it again'),
    ('text', 'or is damaged (42 bytes); download it again'),
    ('truncated zip', 'or is damaged (300 bytes); download it again'),
    ('truncated legacy', 'or is damaged (150 bytes); download it again'),
    ('binary junk', 'or is damaged (1024 bytes); download it again'),
    ('bare tensor', 'it holds a bare tensor'),
    ('list', 'it holds a list, not a dict'),
    ('state_dict list', "its 'state_dict' is a list"),
    ('state_dict None', "its 'state_dict' is a NoneType"),
    ('int keys', "its 'state_dict' has 1 keys that are not strings, e.g. "
     '101 (int)'),
    ('top-level int keys', 'its top level has 1 keys that are not strings'),
    ('ndarray value', "state_dict['w'] is a ndarray, not a tensor"),
])
def test_malformed_file_is_one_clear_error(kind, says, tmp_path):
    path = write_bad(kind, tmp_path / 'bad.pth')
    model = torch.nn.Linear(4, 3)
    for load in (lambda: _load_checkpoint(path),
                 lambda: load_checkpoint(model, path),
                 lambda: load_checkpoint_file(path)):
        with pytest.raises(CheckpointError) as err:
            load()
        msg = str(err.value)
        assert msg.startswith(path) and says in msg
        assert 'not a PyTorch checkpoint' in msg or 'not a tensor' in msg


@pytest.mark.parametrize('route', ['http', 's3', 'pavi'])
def test_malformed_file_is_one_clear_error_on_every_route(
        route, tmp_path, monkeypatch):
    path = write_bad('truncated zip', tmp_path / 'bad.pth')
    with pytest.raises(CheckpointError, match='is not a PyTorch checkpoint '
                       r'or is damaged \(300 bytes\)'):
        load_route(route, path, tmp_path, monkeypatch)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


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


def test_tools_fails_on_unexpected_keys(tiny_tool, tmp_path):
    ckpt = save_variant(
        tiny_tool,
        'extra.pth',
        add={
            'backbone.sta_extra.weight': torch.zeros(2),
            'neck.unused': torch.zeros(1)
        })
    proc = run_test_py(tiny_tool['config'], ckpt, tmp_path, ok=False)
    assert proc.returncode != 0
    assert f'{ckpt} does not fit the model' in proc.stderr
    assert 'unexpected (2 keys the model lacks): backbone.sta_extra.weight, '\
        'neck.unused' in proc.stderr
    assert 'acc/top1' not in proc.stdout + proc.stderr


def test_tools_fails_on_missing_weights(tiny_tool, tmp_path):
    missing = [
        'backbone.blocks.0.attn.qkv.weight', 'backbone.patch_embed.'
        'projection.weight', 'cls_head.fc_cls.bias'
    ]
    assert all(k in tiny_tool['state'] for k in missing)
    ckpt = save_variant(tiny_tool, 'missing.pth', drop=missing)
    proc = run_test_py(tiny_tool['config'], ckpt, tmp_path, ok=False)
    assert proc.returncode != 0
    assert 'missing (3 of the model' in proc.stderr
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
    assert f'Refused to load {ckpt}' in proc.stderr
    assert '--unsafe-full-unpickle' in proc.stderr

    # the explicit opt-in loads it (and so runs its code) and evaluates
    run_test_py(tiny_tool['config'], ckpt, tmp_path / 'wd2',
                '--unsafe-full-unpickle')
    assert marker.read_text() == 'code ran'


class BlockedModuleCall:
    """A call into a module torch blocks outright (``posix``)."""

    def __reduce__(self):
        return (os.getpid, ())


def test_refusal_names_a_blocked_module_without_torch_advice(tmp_path):
    """torch words a blocked module differently; the reason still shows."""
    path = str(tmp_path / 'blocked.pth')
    torch.save(BlockedModuleCall(), path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_file(path)
    msg = str(err.value)
    assert 'GLOBAL posix.getpid' in msg
    assert 'set to `False`' not in msg
