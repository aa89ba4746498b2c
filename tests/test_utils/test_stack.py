"""check_stack: a torch older than our APIs, and two mmcv installs, are
named on import instead of failing later."""
import warnings
from importlib import metadata

import pytest
import torch
from torch.torch_version import TorchVersion

from sta_mmaction.utils import check_stack
from sta_mmaction.utils import mmaction_compat


def test_this_stack_passes_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        check_stack()


def test_old_torch_is_named(monkeypatch):
    monkeypatch.setattr(torch, '__version__', TorchVersion('2.4.1+cu121'))
    with pytest.raises(ImportError, match=r'needs torch>=2\.6.*found torch '
                       r'2\.4\.1\+cu121'):
        check_stack()


def test_full_mmcv_beside_mmcv_lite_is_named(monkeypatch):
    versions = {'mmcv': '2.1.0', 'mmcv-lite': '2.1.0'}
    monkeypatch.setattr(mmaction_compat.metadata, 'version',
                        lambda name: versions[name])
    with pytest.warns(UserWarning, match='mmcv==2.1.0 and mmcv-lite==2.1.0 '
                      'are both installed'):
        check_stack()
    del versions['mmcv-lite']  # a full mmcv alone is fine

    def version(name):
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(mmaction_compat.metadata, 'version', version)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        check_stack()


def test_transformers_5_does_not_break_mmaction_import(tmp_path):
    """mmaction 1.2.0's VindLU imports a name transformers 5 removed; with
    transformers 5 (a dist-info is enough: the module is never imported)
    first on the path, our import still registers the backbones."""
    import subprocess
    import sys
    dist = tmp_path / 'transformers-5.0.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n')
    code = ('import sta_mmaction, sys\n'
            'from mmaction.utils import dependency\n'
            'from mmaction.registry import MODELS\n'
            'assert not dependency.WITH_MULTIMODAL\n'
            "assert MODELS.get('STAViT') is not None\n"
            "assert 'transformers' not in sys.modules\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env={'PYTHONPATH': str(tmp_path),
                                          'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr[-2000:]
