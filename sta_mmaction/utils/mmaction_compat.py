"""Make the PyPI mmaction2 1.2.0 wheel importable: its
``mmaction/models/localizers/__init__.py`` imports ``.drn.drn.DRN`` but the
``drn`` package is missing. Only then a placeholder whose ``DRN`` explains
the gap is put in ``sys.modules``; a source install is left untouched.
:func:`skip_broken_multimodal` keeps it importable beside transformers 5.
:func:`check_stack` names a torch too old for us, and two mmcv installs.
"""
import importlib.util
import os.path as osp
import sys
import types
import warnings
from importlib import metadata

_DRN_PKG = 'mmaction.models.localizers.drn'


class _MissingDRN:
    """Stands in for mmaction's DRN localizer, absent from the PyPI wheel."""

    def __init__(self, *args, **kwargs) -> None:
        raise ImportError(
            'DRN is not part of the PyPI mmaction2 1.2.0 wheel (its '
            '`mmaction/models/localizers/drn` folder is missing). Install '
            'mmaction2 from source to use DRN; sta_mmaction does not need it.')


def drn_is_missing() -> bool:
    """Whether the installed mmaction lacks ``models/localizers/drn``."""
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return False
    root = list(spec.submodule_search_locations)[0]
    return not osp.isdir(osp.join(root, 'models', 'localizers', 'drn'))


def patch_missing_drn() -> bool:
    """Provide ``mmaction.models.localizers.drn`` if the wheel lacks it;
    return whether the placeholder is installed (now or before)."""
    if _DRN_PKG in sys.modules:
        return getattr(sys.modules[_DRN_PKG], '_sta_placeholder', False)
    if not drn_is_missing():
        return False
    pkg = types.ModuleType(_DRN_PKG)
    pkg.__path__, pkg._sta_placeholder = [], True  # a package: .drn resolves
    mod = types.ModuleType(_DRN_PKG + '.drn')
    mod.DRN, pkg.drn = _MissingDRN, mod
    sys.modules[_DRN_PKG], sys.modules[_DRN_PKG + '.drn'] = pkg, mod
    return True


def skip_broken_multimodal() -> bool:
    """Keep ``import mmaction.models`` working beside transformers >= 5.

    mmaction2 1.2.0 imports its VindLU models whenever transformers>=4.28
    is installed, and they import ``apply_chunking_to_forward``, which
    transformers 5 removed, so the import of every model fails. Before
    ``mmaction.models`` is first imported, mmaction is told multimodal is
    absent: VindLU stays its own placeholder (sta_mmaction never uses it).
    Returns whether that was needed.
    """
    if 'mmaction.models' in sys.modules:
        return False
    try:
        major = int(metadata.version('transformers').split('.')[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    if major < 5:
        return False
    from mmaction.utils import dependency
    dependency.WITH_MULTIMODAL = False
    return True


#: The oldest torch with every API we use: ``add_safe_globals`` taking
#: ``(object, 'module.name')`` pairs (the checkpoint allow-list) is 2.6's.
MIN_TORCH = '2.6'


def check_stack() -> None:
    """Refuse a torch older than :data:`MIN_TORCH`; warn when both ``mmcv``
    and ``mmcv-lite`` are installed (one import name, one set of files)."""
    import torch
    if torch.__version__ < MIN_TORCH:
        raise ImportError(
            f'sta_mmaction needs torch>={MIN_TORCH} (its checkpoint loader '
            'allow-lists (object, name) pairs with torch.serialization.'
            f'add_safe_globals); found torch {torch.__version__}. Install a '
            'newer torch for your CUDA (https://pytorch.org).')
    found = []
    for dist in ('mmcv', 'mmcv-lite'):
        try:
            found.append(f'{dist}=={metadata.version(dist)}')
        except metadata.PackageNotFoundError:
            pass
    if len(found) > 1:
        warnings.warn(
            f'{" and ".join(found)} are both installed: they share the '
            'import name mmcv and overwrite each other\'s files, and '
            'uninstalling one breaks the other. Keep one: pip uninstall -y '
            'mmcv mmcv-lite, then pip install mmcv-lite==2.1.0 (or a full '
            'mmcv 2.1.0 built for your torch, for compiled ops).')
