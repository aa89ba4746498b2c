"""Make the PyPI mmaction2 1.2.0 wheel importable: its
``mmaction/models/localizers/__init__.py`` imports ``.drn.drn.DRN`` but the
``drn`` package is missing. Only then a placeholder whose ``DRN`` explains
the gap is put in ``sys.modules``; a source install is left untouched.
"""
import importlib.util
import os.path as osp
import sys
import types

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
