"""Checkpoint loading that never runs code from the file by default.

torch >= 2.6 unpickles with ``weights_only=True`` unless told otherwise, and
mmengine 0.10.7 does not tell it otherwise, so checkpoints that mmengine itself
writes (numpy scalars in the message hub, ``HistoryBuffer`` objects,
``ConfigDict`` in some metas) are refused. Rather than switch the safety off,
this module allow-lists exactly the types such checkpoints carry and routes
mmengine's local and HTTP(S) loaders through :func:`load_checkpoint_file`,
which always passes ``weights_only`` explicitly.

Full unpickling, which can execute arbitrary code, is only done when the user
opts in for a file they trust: ``STA_MMACTION_UNSAFE_FULL_UNPICKLE=1`` in the
environment, :func:`set_unsafe_full_unpickle`, or ``--unsafe-full-unpickle``
on ``tools/test.py``. Every scheme mmengine knows (local, ``http(s)://``,
``s3://``/``petrel://``, ``pavi://``, ``open-mmlab://`` and the schemes that
resolve to URLs) ends in the one ``torch.load`` of :func:`_torch_load`, which
always passes ``weights_only`` explicitly; torch 2.13 lets an explicit
``weights_only=True`` win over ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the
tests check it).

The loaded object is checked to be a checkpoint (a dict whose ``state_dict``,
if any, maps strings to tensors), so a damaged or foreign file is one
:class:`CheckpointError` naming it. Downloads are cached per URL, never per
file name, and each load remembers the local file and its SHA-256
(:func:`pop_last_loaded`) for the run's provenance record.
"""
import hashlib
import io
import os
import os.path as osp
import pickle
import re
import sys
import tempfile
from http.client import HTTPException
from typing import (Any, BinaryIO, Callable, List, NamedTuple, Optional,
                    Sequence, Tuple, Union)
from urllib.error import HTTPError, URLError

import numpy as np
import torch
from mmengine.logging import print_log

#: Environment variable that opts in to full (unsafe) unpickling.
UNSAFE_ENV = 'STA_MMACTION_UNSAFE_FULL_UNPICKLE'

_TRUE = ('1', 'true', 'yes', 'on')
_registered = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects outside the allow-list and was refused."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used: missing, damaged, or not for this model.

    The message names the file (or URL) and says what to do.
    """


class LoadRecord(NamedTuple):
    """What one load read.

    ``source`` is the path or URL as given, ``local_file`` the file read (a
    download's cached copy; for bytes read from object storage or pavi, the
    URI itself) and ``sha256`` the hex digest of its bytes.
    """
    source: str
    local_file: str
    sha256: str


_last_loaded: Optional[LoadRecord] = None


def pop_last_loaded() -> Optional[LoadRecord]:
    """The record of the latest load in this process, then forget it.

    Forgetting it means a record can never be attributed to a later
    checkpoint that was loaded some other way.
    """
    global _last_loaded
    record, _last_loaded = _last_loaded, None
    return record


def short_keys(items: Sequence[str], n: int = 8, sep: str = ', ') -> str:
    """The first ``n`` items joined, and how many more there are.

    Args:
        items (Sequence[str]): Keys (or other items) to list.
        n (int): How many to show. Defaults to 8.
        sep (str): Separator. Defaults to ``', '``.
    """
    items = [str(i) for i in items]
    more = f' ... (+{len(items) - n} more)' if len(items) > n else ''
    return sep.join(items[:n]) + more


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file, read in chunks.

    Args:
        path (str): The file.
        chunk (int): Bytes read at a time. Defaults to 1 MiB.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def unsafe_full_unpickle_enabled() -> bool:
    """Whether the user opted in to full unpickling."""
    return os.environ.get(UNSAFE_ENV, '').strip().lower() in _TRUE


def set_unsafe_full_unpickle(enabled: bool) -> None:
    """Opt in (or back out) of full unpickling for this process and children.

    Only enable it for files you trust: unpickling can run arbitrary code.
    """
    if enabled:
        os.environ[UNSAFE_ENV] = '1'
    else:
        os.environ.pop(UNSAFE_ENV, None)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    mmengine pickles the ``HistoryBuffer._statistics_methods`` table, whose
    values are functions saved as ``getattr(HistoryBuffer, 'min')``. A general
    ``getattr`` would let a crafted file reach any attribute (module globals
    included), so only this one lookup is allowed.
    """
    from mmengine.logging import HistoryBuffer
    allowed = set(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'mean', 'current'
    }
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refused getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods are allowed.')


def safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The allow-list: globals that MMAction2/mmengine checkpoints carry."""
    import argparse

    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, '_core') \
        else np.core.multiarray
    # argparse.Namespace: the original VideoMAE release saves its ``args``.
    items: List[Union[Callable, Tuple[Callable, str]]] = [
        ConfigDict, HistoryBuffer, argparse.Namespace, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr'),
    ]
    # numpy 1 pickles these under ``numpy.core``, numpy 2 under
    # ``numpy._core``; checkpoints of either age must load.
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items.append((multiarray._reconstruct, f'{mod}._reconstruct'))
        items.append((multiarray.scalar, f'{mod}.scalar'))
    for name in dir(getattr(np, 'dtypes', object())):
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            items.append(cls)
    return items


def register_safe_globals() -> None:
    """Add :func:`safe_globals` to torch's weights-only allow-list (once)."""
    global _registered
    if not _registered:
        torch.serialization.add_safe_globals(safe_globals())
        _registered = True


#: What torch's weights-only unpickler says about bytes that are no pickle.
_DAMAGED = ('Unsupported operand', 'String is too long',
            'unsupported persistent id')


def _unpickler_reason(err: Exception) -> str:
    """The weights-only unpickler's own reason, without torch's advice.

    torch words it as ``WeightsUnpickler error: <reason>`` in some releases
    and as a paragraph of its own (``Trying to load unsupported GLOBAL
    posix.system ...``, 2.13) in others, between paragraphs that advise
    turning the safety off.
    """
    text = str(err)
    found = re.search(r'WeightsUnpickler error:\s*(.+)', text)
    if found:
        reason = found.group(1).splitlines()[0]
    else:
        paragraphs = [p.strip() for p in text.split('\n\n') if p.strip()]
        advice = ('Weights only load failed', 'Check the documentation')
        kept = [p for p in paragraphs if not p.startswith(advice)]
        reason = (kept or paragraphs or [text.strip()])[0].splitlines()[0]
    return reason.split(' Please use ')[0][:200]


def _is_damaged(err: Exception, weights_only: bool) -> bool:
    """Whether an unpickling error means a damaged file, not a refused one.

    A refused global whose name cannot exist (a cut-off legacy file names
    ``torch._utils._rebui``) is damage too; only modules already imported
    are looked at, so no module named by the file is imported.
    """
    if not weights_only:
        return True
    reason = _unpickler_reason(err)
    if reason.startswith(_DAMAGED):
        return True
    found = re.search(r'GLOBAL (\S+) was not an allowed global', reason)
    if found:
        module, _, attr = found.group(1).rpartition('.')
        loaded = sys.modules.get(module)
        return loaded is not None and not hasattr(loaded, attr)
    return False


def _torch_load(f: Union[str, BinaryIO], name: str, map_location: Any,
                unsafe_full_unpickle: Optional[bool]) -> Any:
    """The one ``torch.load`` of the package; always says ``weights_only``."""
    register_safe_globals()
    if unsafe_full_unpickle is None:
        unsafe_full_unpickle = unsafe_full_unpickle_enabled()
    try:
        checkpoint = torch.load(
            f,
            map_location=map_location,
            weights_only=not unsafe_full_unpickle)
    except (UnsafeCheckpointError, MemoryError):
        raise
    except RuntimeError as err:
        if 'map_location' in str(err):
            raise  # a device problem, which torch's message explains
        raise _damaged(name, f) from err
    except pickle.UnpicklingError as err:
        if _is_damaged(err, not unsafe_full_unpickle):
            raise _damaged(name, f) from err
        raise UnsafeCheckpointError(
            f'Refused to load {name}: it holds objects outside the '
            'allow-list of types that MMAction2/mmengine checkpoints carry, '
            'and unpickling them could run code from the file. If you trust '
            f'this file, opt in with {UNSAFE_ENV}=1 or tools/test.py '
            f'--unsafe-full-unpickle. Details: {_unpickler_reason(err)}'
        ) from err
    except Exception as err:  # noqa: B902  (torch raises many kinds here)
        raise _damaged(name, f) from err
    validate_checkpoint(checkpoint, name)
    return checkpoint


def _damaged(name: str, f: Union[str, io.BytesIO]) -> CheckpointError:
    """One message for every way a file can fail to be a checkpoint.

    torch's own errors (``EOFError``, ``KeyError: 101``, ``PytorchStreamReader
    failed``) do not say what is wrong; the file's first bytes do.
    """
    if isinstance(f, str):
        size = osp.getsize(f)
        with open(f, 'rb') as stream:
            head = stream.read(64)
    else:
        size, head = len(f.getbuffer()), bytes(f.getbuffer()[:64])
    if size == 0:
        reason = 'it is empty'
    elif head.startswith(b'PK'):
        reason = 'its zip archive is truncated or corrupt'
    elif head.startswith(b'\x80'):
        reason = 'its pickle data is truncated or corrupt'
    elif all(32 <= b < 127 or b in b'\t\r\n' for b in head):
        reason = f'it is a text file, starting {head[:32].decode()!r}'
    else:
        reason = 'torch cannot read it'
    return CheckpointError(
        f'{name} is not a PyTorch checkpoint or is damaged: {reason} '
        f'({size} bytes). If it is a download, download it again.')


def validate_checkpoint(checkpoint: Any, name: str) -> None:
    """Refuse a loaded object that is not shaped like a checkpoint.

    Args:
        checkpoint: What ``torch.load`` returned.
        name (str): The file or URL, for the message.

    Raises:
        CheckpointError: It is not a dict with string keys, or its
            ``state_dict`` is not a dict mapping strings to tensors.
    """
    what = ('a bare tensor (torch.save(tensor))' if isinstance(
        checkpoint, torch.Tensor) else f'a {type(checkpoint).__name__}')
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'{name} is not a PyTorch checkpoint of a model: it holds {what}, '
            'not a dict of weights. Save one with '
            "torch.save({'state_dict': model.state_dict()}, path).")
    _require_str_keys(checkpoint, name, 'its top level')
    if 'state_dict' not in checkpoint:
        return
    state = checkpoint['state_dict']
    if not isinstance(state, dict):
        raise CheckpointError(
            f'{name} is not a PyTorch checkpoint or is damaged: its '
            f"'state_dict' is a {type(state).__name__}, not a dict of "
            'tensors.')
    _require_str_keys(state, name, "its 'state_dict'")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{name}: state_dict[{key!r}] is a {type(value).__name__}, "
                'not a tensor; the file is not a PyTorch checkpoint of '
                'weights or is damaged.')


def _require_str_keys(mapping: dict, name: str, where: str) -> None:
    bad = [k for k in mapping if not isinstance(k, str)]
    if bad:
        raise CheckpointError(
            f'{name} is not a PyTorch checkpoint or is damaged: {where} has '
            f'{len(bad)} keys that are not strings, e.g. {bad[0]!r} '
            f'({type(bad[0]).__name__}).')


def load_checkpoint_file(filename: Union[str, os.PathLike],
                         map_location: Any = None,
                         unsafe_full_unpickle: Optional[bool] = None) -> Any:
    """``torch.load`` with the allow-list, safe unless explicitly trusted.

    Also checks that the file holds a checkpoint and remembers the file and
    its SHA-256 for :func:`pop_last_loaded`.

    Args:
        filename (str | PathLike): Local checkpoint path.
        map_location: Same as :func:`torch.load`. Defaults to None.
        unsafe_full_unpickle (bool, optional): Fully unpickle the file, which
            may execute code from it. Defaults to None, which reads
            ``STA_MMACTION_UNSAFE_FULL_UNPICKLE``.

    Raises:
        UnsafeCheckpointError: The file holds objects outside the allow-list.
        CheckpointError: The file does not exist, is damaged or is not a
            checkpoint.
    """
    global _last_loaded
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(f'Checkpoint {filename} does not exist (or is '
                              'not a file); check the path.')
    checkpoint = _torch_load(filename, filename, map_location,
                             unsafe_full_unpickle)
    _last_loaded = LoadRecord(filename, osp.abspath(filename),
                              file_sha256(filename))
    return checkpoint


def load_checkpoint_bytes(data: bytes,
                          name: str,
                          map_location: Any = None,
                          unsafe_full_unpickle: Optional[bool] = None) -> Any:
    """:func:`load_checkpoint_file` for a checkpoint read into memory.

    Args:
        data (bytes): The file's contents.
        name (str): Where they came from (its URI), the recorded file.
        map_location: Same as :func:`torch.load`. Defaults to None.
        unsafe_full_unpickle (bool, optional): As for
            :func:`load_checkpoint_file`. Defaults to None.
    """
    global _last_loaded
    with io.BytesIO(data) as buffer:
        checkpoint = _torch_load(buffer, name, map_location,
                                 unsafe_full_unpickle)
    _last_loaded = LoadRecord(name, name, hashlib.sha256(data).hexdigest())
    return checkpoint


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    return load_checkpoint_file(filename, map_location)


def cached_path(url: str, model_dir: Optional[str] = None) -> str:
    """Where a download of ``url`` is cached.

    The folder is named by a hash of the whole URL: two URLs that end in the
    same file name must never share a file, or the second would silently
    evaluate the first one's weights.

    Args:
        url (str): The checkpoint URL.
        model_dir (str, optional): Cache root. Defaults to None, torch hub's
            ``checkpoints`` folder.
    """
    root = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(root, 'sta_url', key, _url_basename(url))


def _url_basename(url: str) -> str:
    return osp.basename(url.split('?')[0].split('#')[0]) or 'checkpoint.pth'


def _download(url: str, cached: str, progress: bool) -> None:
    """Download to a temporary name, then rename: a cut-off download never
    sits where a later run would take it for the cached file."""
    os.makedirs(osp.dirname(cached), exist_ok=True)
    fd, part = tempfile.mkstemp(
        dir=osp.dirname(cached), prefix=osp.basename(cached), suffix='.part')
    os.close(fd)
    try:
        torch.hub.download_url_to_file(url, part, progress=progress)
        os.replace(part, cached)
    except (OSError, HTTPException) as err:
        raise CheckpointError(
            f'could not download {url} ({_reason(err)}); download it on a '
            'machine with internet and pass the local file: python '
            f'tools/test.py CONFIG /path/to/{_url_basename(url)}') from err
    finally:
        if osp.exists(part):
            os.remove(part)


def _reason(err: Exception) -> str:
    if isinstance(err, HTTPError):
        return f'HTTP {err.code} {err.reason}'
    if isinstance(err, URLError):
        return str(err.reason)
    return f'{type(err).__name__}: {err}'.replace('\n', ' ')


def _load_from_http(filename: str,
                    map_location: Any = None,
                    model_dir: Optional[str] = None,
                    progress: bool = os.isatty(0)) -> Any:
    """Download once per machine (rank 0 first), then load safely."""
    from mmengine.dist import get_dist_info

    def fetch() -> Any:
        global _last_loaded
        cached = cached_path(filename, model_dir)
        if not osp.exists(cached):
            _download(filename, cached, progress)
        checkpoint = load_checkpoint_file(cached, map_location)
        _last_loaded = _last_loaded._replace(source=filename)
        print_log(
            f'Checkpoint {filename}: read the local file {cached} (sha256 '
            f'{_last_loaded.sha256[:12]})',
            logger='current')
        return checkpoint

    rank, world_size = get_dist_info()
    checkpoint = fetch() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = fetch()
    return checkpoint


def _load_from_ceph(filename: str,
                    map_location: Any = None,
                    backend: str = 'petrel') -> Any:
    """Read the bytes with mmengine's file backend, then load safely."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    return load_checkpoint_bytes(
        file_backend.get(filename), filename, map_location)


def _load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """Download from pavi's model cloud to a temporary folder, load safely."""
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.') from err
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        with open(downloaded, 'rb') as f:
            return load_checkpoint_bytes(f.read(), filename, map_location)


def _load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """Resolve ``open-mmlab://NAME`` as mmengine does, then load safely.

    mmengine's own loader ``torch.load``s names that resolve to a file in
    the mmengine home without saying ``weights_only``.
    """
    from mmengine.runner import checkpoint as mm_checkpoint
    name = filename.split('://', 1)[1]
    name = mm_checkpoint.get_deprecated_model_names().get(name, name)
    urls = mm_checkpoint.get_external_models()
    if name not in urls:
        raise CheckpointError(
            f'{filename}: {name!r} is not a model that mmengine knows; pass '
            'a file or URL instead.')
    url = urls[name]
    if url.startswith(('http://', 'https://')):
        return _load_from_http(url, map_location)
    return load_checkpoint_file(
        osp.join(mm_checkpoint._get_mmengine_home(), url), map_location)


def install_safe_loaders() -> None:
    """Route every mmengine checkpoint scheme through the safe load.

    Local files, ``http(s)://``, ``s3://``/``petrel://`` (with an optional
    ``name:`` prefix, as mmengine matches them), ``pavi://`` and
    ``open-mmlab://``/``openmmlab://`` get loaders of their own; the
    ``mmcls://``, ``modelzoo://`` and ``torchvision://`` loaders resolve
    their names to URLs and call the module-level ``load_from_http``, which
    is replaced too, so no scheme falls back to a full unpickle.
    """
    from mmengine.runner import checkpoint as mm_checkpoint
    register_safe_globals()
    loader = mm_checkpoint.CheckpointLoader
    schemes = [('', _load_from_local),
               (('http://', 'https://'), _load_from_http),
               ([r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], _load_from_ceph),
               ('pavi://', _load_from_pavi),
               (('open-mmlab://', 'openmmlab://'), _load_from_openmmlab)]
    for prefixes, load in schemes:
        loader.register_scheme(prefixes=prefixes, loader=load, force=True)
    mm_checkpoint.load_from_http = _load_from_http
