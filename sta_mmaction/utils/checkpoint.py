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
on ``tools/test.py``.
"""
import os
import os.path as osp
import pickle
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
import torch

#: Environment variable that opts in to full (unsafe) unpickling.
UNSAFE_ENV = 'STA_MMACTION_UNSAFE_FULL_UNPICKLE'

_TRUE = ('1', 'true', 'yes', 'on')
_registered = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects outside the allow-list and was refused."""


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


def load_checkpoint_file(filename: Union[str, os.PathLike],
                         map_location: Any = None,
                         unsafe_full_unpickle: Optional[bool] = None) -> Any:
    """``torch.load`` with the allow-list, safe unless explicitly trusted.

    Args:
        filename (str | PathLike): Local checkpoint path.
        map_location: Same as :func:`torch.load`. Defaults to None.
        unsafe_full_unpickle (bool, optional): Fully unpickle the file, which
            may execute code from it. Defaults to None, which reads
            ``STA_MMACTION_UNSAFE_FULL_UNPICKLE``.

    Raises:
        UnsafeCheckpointError: The file holds objects outside the allow-list.
    """
    register_safe_globals()
    if unsafe_full_unpickle is None:
        unsafe_full_unpickle = unsafe_full_unpickle_enabled()
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(
            filename,
            map_location=map_location,
            weights_only=not unsafe_full_unpickle)
    except pickle.UnpicklingError as err:
        if isinstance(err, UnsafeCheckpointError):
            raise
        raise UnsafeCheckpointError(
            f'Refused to load {filename}: it holds objects outside the '
            'allow-list of types that MMAction2/mmengine checkpoints carry, '
            'and unpickling them could run code from the file. If you trust '
            f'this file, opt in with {UNSAFE_ENV}=1 or tools/test.py '
            f'--unsafe-full-unpickle. Details: {err}') from err


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    return load_checkpoint_file(filename, map_location)


def _load_from_http(filename: str,
                    map_location: Any = None,
                    model_dir: Optional[str] = None,
                    progress: bool = os.isatty(0)) -> Any:
    """Download once per machine (rank 0 first), then load safely."""
    from mmengine.dist import get_dist_info

    def fetch() -> Any:
        hub_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
        os.makedirs(hub_dir, exist_ok=True)
        cached = osp.join(hub_dir, osp.basename(filename.split('?')[0]))
        if not osp.exists(cached):
            torch.hub.download_url_to_file(filename, cached, progress=progress)
        return load_checkpoint_file(cached, map_location)

    rank, world_size = get_dist_info()
    checkpoint = fetch() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = fetch()
    return checkpoint


def install_safe_loaders() -> None:
    """Route mmengine's local and HTTP(S) checkpoint loading through here.

    mmengine's ``open-mmlab://``, ``openmmlab://``, ``mmcls://``,
    ``modelzoo://`` and ``torchvision://`` loaders resolve their names to URLs
    and then call the module-level ``load_from_http``, which is replaced too,
    so no scheme falls back to a full unpickle.
    """
    from mmengine.runner import checkpoint as mm_checkpoint
    register_safe_globals()
    loader = mm_checkpoint.CheckpointLoader
    loader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    loader.register_scheme(
        prefixes=('http://', 'https://'), loader=_load_from_http, force=True)
    mm_checkpoint.load_from_http = _load_from_http
