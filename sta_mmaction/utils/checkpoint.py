"""Checkpoint loading that never runs code from the file unless trusted.

mmengine 0.10.7 leaves ``weights_only`` to torch, so with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` its loaders run whatever a file holds,
and without it they refuse what mmengine itself writes. Here those types are
allow-listed, and every scheme of mmengine's ``CheckpointLoader`` (read by
Runner and MMAction2's ``init_recognizer`` alike) gets a loader ending in
:func:`load_checkpoint_file`, whose explicit ``weights_only`` wins over the
variable. Full unpickling needs an opt-in (:data:`UNSAFE_ENV`,
:func:`set_unsafe_full_unpickle` or ``--unsafe-full-unpickle``).
"""
import argparse
import hashlib
import io
import os
import os.path as osp
import pickle
import pickletools
import tempfile
import uuid
import zipfile
from contextlib import nullcontext
from http.client import HTTPException
from typing import (Any, BinaryIO, Callable, Dict, Mapping, Optional,
                    Sequence, Union)
from urllib.error import HTTPError

import numpy as np
import torch
from mmengine.logging import print_log

#: Environment variable that opts in to full (unsafe) unpickling.
UNSAFE_ENV = 'STA_MMACTION_UNSAFE_FULL_UNPICKLE'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects outside the allow-list and was refused."""


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or not for this model; the message
    names the file (or URL) and says what to do."""


def short_keys(items: Sequence[Any], n: int = 8, sep: str = ', ') -> str:
    """The first ``n`` items joined, and how many more there are.

    Args:
        items (Sequence): Keys (or other items) to list.
        n (int): How many to show. Defaults to 8.
        sep (str): Separator. Defaults to ``', '``.
    """
    more = f' ... (+{len(items) - n} more)' if len(items) > n else ''
    return sep.join(str(i) for i in items[:n]) + more


def _strip_module(state: Mapping) -> Dict[str, Any]:
    """Drop a ``module.`` prefix that every key carries (DDP saves)."""
    keys = [k for k in state if isinstance(k, str)]
    if keys and all(k.startswith('module.') for k in keys):
        return {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


def _find_state(checkpoint: Any, wrappers: Sequence[str],
                looks_original: Callable[[Any], bool]) -> tuple:
    """The state dict (``module.`` stripped) that ``looks_original`` accepts,
    under the first of ``wrappers`` or at the top level, and its wrapper."""
    if not isinstance(checkpoint, Mapping):
        return None, None
    for key in wrappers:
        if looks_original(checkpoint.get(key)):
            return _strip_module(checkpoint[key]), key
    if looks_original(checkpoint):
        return _strip_module(checkpoint), None
    return None, None


def file_sha256(path: str) -> str:
    """SHA-256 (hex) of the file at ``path``, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def set_unsafe_full_unpickle(enabled: bool) -> None:
    """Opt in (``True``) to full unpickling, or back out, for this process
    and its children. Only for files you trust: it can run their code."""
    if enabled:
        os.environ[UNSAFE_ENV] = '1'
    else:
        os.environ.pop(UNSAFE_ENV, None)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods,
    which mmengine pickles as ``getattr(HistoryBuffer, 'mean')`` etc.; a
    general ``getattr`` would let a crafted file reach any attribute."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refused getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods are allowed.')


def register_safe_globals() -> None:
    """Allow-list (idempotently) what MMAction2/mmengine checkpoints carry:
    ``ConfigDict``, ``HistoryBuffer`` (with the restricted ``getattr``),
    ``argparse.Namespace`` (VideoMAE's ``args``) and numpy types."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    core = np._core if hasattr(np, '_core') else np.core
    # numpy 1 pickles these under numpy.core, numpy 2 under numpy._core
    numpy_names = [(getattr(core.multiarray, fn), f'{mod}.multiarray.{fn}')
                   for mod in ('numpy.core', 'numpy._core')
                   for fn in ('_reconstruct', 'scalar')]
    # the classes of numpy.dtypes (numpy < 1.25 has none)
    dtypes = [cls for cls in vars(getattr(np, 'dtypes', np)).values()
              if isinstance(cls, type) and issubclass(cls, np.dtype)]
    torch.serialization.add_safe_globals([
        ConfigDict, HistoryBuffer, argparse.Namespace, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr'), *numpy_names,
        *dtypes
    ])


def _pickle_parses(f: Union[str, BinaryIO]) -> bool:
    """Whether the file's pickle data is well formed (read, never run): a
    zip checkpoint keeps it in ``*/data.pkl``; a legacy one starts with four
    pickles (magic number, protocol, system info, the object)."""
    try:
        with open(f, 'rb') if isinstance(f, str) else nullcontext(f) as data:
            data.seek(0)
            count = 4
            if zipfile.is_zipfile(data):
                with zipfile.ZipFile(data) as archive:
                    [name] = [n for n in archive.namelist()
                              if n.endswith('data.pkl')]
                    data, count = io.BytesIO(archive.read(name)), 1
            data.seek(0)
            for _ in range(count):
                for _ in pickletools.genops(data):
                    pass
    except Exception:  # noqa: B902  (every way of not parsing is damage)
        return False
    return True


def load_checkpoint_file(f: Union[str, os.PathLike, BinaryIO],
                         map_location: Any = None,
                         unsafe_full_unpickle: Optional[bool] = None,
                         name: Optional[str] = None) -> dict:
    """``torch.load`` with the allow-list, safe unless explicitly trusted.

    Args:
        f (str | PathLike | BinaryIO): A local file, or a seekable stream.
        map_location: Same as :func:`torch.load`. Defaults to None.
        unsafe_full_unpickle (bool, optional): Fully unpickle, which may run
            code from the file. Defaults to None: :data:`UNSAFE_ENV` decides.
        name (str, optional): The file or URI, for messages. Defaults to
            None, ``f`` itself.

    Returns:
        dict: The checkpoint, checked by :func:`validate_checkpoint`.

    Raises:
        UnsafeCheckpointError: It holds objects outside the allow-list.
        CheckpointError: It does not exist, is damaged or is no checkpoint.
    """
    if isinstance(f, (str, os.PathLike)):
        f = osp.expanduser(str(f))
        if not osp.isfile(f):
            raise CheckpointError(f'Checkpoint {f} does not exist (or is not '
                                  'a file); check the path.')
    name, unsafe = name or str(f), unsafe_full_unpickle
    if unsafe is None:
        opt_in = os.environ.get(UNSAFE_ENV, '').strip().lower()
        unsafe = opt_in in ('1', 'true', 'yes', 'on')
    register_safe_globals()
    try:
        checkpoint = torch.load(f, map_location=map_location,
                                weights_only=not unsafe)
    except MemoryError:
        raise
    except Exception as err:  # noqa: B902  (torch raises many kinds here)
        # A refused global is an UnpicklingError on a well-formed pickle.
        # torch's message advises switching the safety off: only the
        # unpickler's reason (its __context__, naming the global) is kept.
        if (not unsafe and isinstance(err, pickle.UnpicklingError)
                and _pickle_parses(f)):
            raise UnsafeCheckpointError(
                f'Refused to load {name}: it holds objects outside the '
                'allow-list of types that MMAction2/mmengine checkpoints '
                'carry, and unpickling them could run code from the file. If '
                f'you trust this file, opt in with {UNSAFE_ENV}=1 or '
                f'--unsafe-full-unpickle. Details: {err.__context__ or err}'
            ) from err
        size = osp.getsize(f) if isinstance(f, str) else f.seek(0, 2)
        raise CheckpointError(
            f'{name} is not a PyTorch checkpoint or is damaged ({size} '
            'bytes); download it again or pass the right file.') from err
    validate_checkpoint(checkpoint, name)
    return checkpoint


def validate_checkpoint(checkpoint: Any, name: str) -> None:
    """Refuse a loaded object that is not shaped like a checkpoint: a dict
    with string keys whose ``state_dict``, if any, maps strings to tensors.

    Args:
        checkpoint: What ``torch.load`` returned.
        name (str): The file or URL, for the message.
    """
    if not isinstance(checkpoint, dict):
        what = ('a bare tensor (torch.save(tensor))' if isinstance(
            checkpoint, torch.Tensor) else f'a {type(checkpoint).__name__}')
        raise CheckpointError(
            f'{name} is not a PyTorch checkpoint of a model: it holds {what}, '
            'not a dict of weights. Save one with '
            "torch.save({'state_dict': model.state_dict()}, path).")
    state = checkpoint.get('state_dict', {})
    damaged = f'{name} is not a PyTorch checkpoint or is damaged:'
    if not isinstance(state, dict):
        raise CheckpointError(f"{damaged} its 'state_dict' is a "
                              f'{type(state).__name__}, not a dict of '
                              'tensors.')
    for where, mapping in (('its top level', checkpoint),
                           ("its 'state_dict'", state)):
        bad = [k for k in mapping if not isinstance(k, str)]
        if bad:
            raise CheckpointError(
                f'{damaged} {where} has {len(bad)} keys that are not '
                f'strings, e.g. {bad[0]!r} ({type(bad[0]).__name__}).')
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{name}: state_dict[{key!r}] is a {type(value).__name__}, "
                'not a tensor; the file is not a PyTorch checkpoint of '
                'weights or is damaged.')


def cached_path(url: str, model_dir: Optional[str] = None) -> str:
    """Where a download of ``url`` is cached: in a folder named by a hash of
    the whole URL, as two URLs ending in the same file name must never share
    a file (the second would silently evaluate the first one's weights).

    Args:
        url (str): The checkpoint URL.
        model_dir (str, optional): Cache root. Defaults to None, torch hub's
            ``checkpoints`` folder.
    """
    root = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    base = osp.basename(url.split('?')[0].split('#')[0]) or 'checkpoint.pth'
    return osp.join(root, 'sta_url', key, base)


def local_checkpoint_file(source: str) -> Optional[str]:
    """The local file that loading ``source`` (a path, or an ``http(s)``
    URL: its cached download) reads; None for other schemes and for files
    that are not there."""
    path = (cached_path(source) if source.startswith(('http://', 'https://'))
            else None if '://' in source else
            osp.abspath(osp.expanduser(source)))
    return path if path and osp.isfile(path) else None


def _load_from_local(filename: str, map_location: Any = None) -> dict:
    # its own function: mmengine logs a loader by its name
    return load_checkpoint_file(filename, map_location)


def _download(url: str, model_dir: Optional[str], progress: bool) -> str:
    """The cached download of ``url``, downloaded first if absent."""
    cached = cached_path(url, model_dir)
    if osp.exists(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    # Download under a unique name, then rename: a cut-off download never
    # sits where a later run (or another node) would take it for the file.
    part = f'{cached}.{uuid.uuid4().hex}.part'
    try:
        torch.hub.download_url_to_file(url, part, progress=progress)
        os.replace(part, cached)
    except (OSError, HTTPException) as err:
        reason = (f'HTTP {err.code} {err.reason}'
                  if isinstance(err, HTTPError) else
                  f'{type(err).__name__}: {err}'.replace('\n', ' '))
        raise CheckpointError(
            f'could not download {url} ({reason}); download it on a machine '
            'with internet and pass the local file: python tools/test.py '
            f'CONFIG /path/to/{osp.basename(cached)}') from err
    finally:
        if osp.exists(part):
            os.remove(part)
    return cached


def _load_from_http(url: str, map_location: Any = None,
                    model_dir: Optional[str] = None,
                    progress: bool = os.isatty(0)) -> dict:
    """Download once (rank 0 first, the others then find it), load safely."""
    from mmengine.dist import barrier, get_dist_info
    if get_dist_info()[0] == 0:
        _download(url, model_dir, progress)
    barrier()
    cached = _download(url, model_dir, progress)
    print_log(f'Checkpoint {url}: read the local file {cached}',
              logger='current')
    return load_checkpoint_file(
        cached, map_location, name=f'{cached} (the download of {url}; '
        'delete it to download it again)')


def _load_from_ceph(uri: str, map_location: Any = None,
                    backend: str = 'petrel') -> dict:
    """Read the bytes with mmengine's file backend, then load safely."""
    from mmengine import fileio
    storage = fileio.get_file_backend(uri, backend_args={'backend': backend})
    return load_checkpoint_file(io.BytesIO(storage.get(uri)), map_location,
                                name=uri)


def _load_from_pavi(uri: str, map_location: Any = None) -> dict:
    """Download from pavi's model cloud to a temporary folder, load safely."""
    from pavi import modelcloud
    model = modelcloud.get(uri[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        model.download(osp.join(tmp_dir, model.name))
        return load_checkpoint_file(
            osp.join(tmp_dir, model.name), map_location, name=uri)


def _load_from_openmmlab(uri: str, map_location: Any = None) -> dict:
    """Resolve ``open-mmlab://NAME`` with mmengine's tables, load safely."""
    from mmengine.runner import checkpoint as mm
    name = uri.split('://', 1)[1]
    name = mm.get_deprecated_model_names().get(name, name)
    target = mm.get_external_models().get(name)
    if target is None:
        raise CheckpointError(f'{uri}: {name!r} is not a model that mmengine '
                              'knows; pass a file or URL instead.')
    if target.startswith(('http://', 'https://')):
        return _load_from_http(target, map_location)
    # mmengine reads a name that is no URL in its home folder
    home = os.getenv(mm.ENV_MMENGINE_HOME, osp.join(
        os.getenv(mm.ENV_XDG_CACHE_HOME, mm.DEFAULT_CACHE_DIR), 'mmengine'))
    return load_checkpoint_file(osp.join(osp.expanduser(home), target),
                                map_location)


def install_safe_loaders() -> None:
    """Make every mmengine checkpoint scheme load weights-only by default.

    ``mmcls://`` and ``torchvision://`` resolve to URLs and call mmengine's
    module-level ``load_from_http``, so that is replaced too.
    """
    from mmengine.runner import checkpoint as mm
    register_safe_globals()
    for prefixes, loader in (
            ('', _load_from_local), (('http://', 'https://'), _load_from_http),
            ([r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], _load_from_ceph),
            ('pavi://', _load_from_pavi),
            (('open-mmlab://', 'openmmlab://'), _load_from_openmmlab)):
        mm.CheckpointLoader.register_scheme(prefixes, loader, force=True)
    mm.load_from_http = _load_from_http
