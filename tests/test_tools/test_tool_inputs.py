"""Hostile command lines of the tools, each refused in one line before any
work (in process: each tool's ``main(argv)`` raises what ``run_cli`` prints).
"""
import importlib.util
import os
import os.path as osp

import pytest

from sta_mmaction.apis.cli import stderr_without

from ..conftest import ROOT

VITS = osp.join(ROOT, 'configs', 'sta_vits_k400_r64.py')


def tool(name):
    path = osp.join(ROOT, 'tools', name)
    spec = importlib.util.spec_from_file_location(
        osp.basename(name)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'not read')
    return str(path)


@pytest.mark.parametrize('name, argv, match', [
    ('analysis_tools/get_flops.py', [VITS, '--shape', '2', '3', '16', '224',
                                     '224'], 'give one view, 1 C T H W'),
    ('analysis_tools/get_flops.py', [VITS, '--shape', '1', '3', '0', '224',
                                     '224'], 'with positive sizes'),
    ('analysis_tools/benchmark.py', ['--model', 'vit-s', '--device', 'cpu0'],
     "--device='cpu0' is not a torch device"),
    ('analysis_tools/benchmark.py', ['--model', 'vit-s', '--out-dir', 'F'],
     '--out-dir=.* is a file'),
    ('model_converters/convert_swin_checkpoint.py', ['F', 'F'],
     'is the source file itself'),
    ('model_converters/convert_videomae_checkpoint.py', ['F', 'F'],
     'is the source file itself'),
    ('model_converters/convert_videomae_checkpoint.py', ['F', 'DIR'],
     'dst=.* is a folder'),
    ('visualize_tokens.py', ['F', VITS, '--out', 'DIR'],
     '--out=.* is a folder'),
    ('demo.py', ['--work-dir', 'F'], '--work-dir=.* is a file'),
])
def test_refused_in_one_line(name, argv, match, a_file, tmp_path):
    argv = [a_file if a == 'F' else str(tmp_path) if a == 'DIR' else a
            for a in argv]
    with pytest.raises(ValueError, match=match):
        tool(name)(argv)
    assert open(a_file, 'rb').read() == b'not read'


def test_profiler_lines_kept_off_stderr(capfd):
    with stderr_without():
        os.write(2, b'USDT:2026-01-01 1:1 SyncActivityProfilerHandler.cpp:52]'
                 b' profiler_start\nkept line\n')
    assert capfd.readouterr().err == 'kept line\n'
