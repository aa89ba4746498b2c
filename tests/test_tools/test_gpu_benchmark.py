"""tools/analysis_tools/gpu_benchmark.sh and gpu_wheels.sh, without a GPU.

The dry run shows what the script would install and run; every call must
parse as benchmark.py's arguments, at the settings of the GPU issue. The
tiny CPU run from an installed wheel folder is checked by hand (see
docs/speed.md), since it downloads.
"""
import os
import re
import shlex
import subprocess

import pytest

from ..conftest import ROOT
from ..test_analysis.test_speed import load_tool

TOOLS = os.path.join(ROOT, 'tools', 'analysis_tools')
SCRIPT = os.path.join(TOOLS, 'gpu_benchmark.sh')


def dry_run(out, *flags, wheels):
    proc = subprocess.run(['bash', SCRIPT, str(out), '--dry-run', *flags],
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, WHEELS=str(wheels),
                                   SITE='/tmp/site', PYTHONPATH=''))
    return proc.stdout.splitlines(), proc.stderr


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / 'whl'
    folder.mkdir()
    for name in ('mmengine-0.10.7-py3-none-any.whl',
                 'addict-2.4.0-py3-none-any.whl'):
        (folder / name).write_bytes(b'')
    return folder


def test_dry_run_installs_the_wheels_then_runs_each_model(tmp_path, wheels):
    out = tmp_path / 'out'
    lines, _ = dry_run(out, wheels=wheels)
    install = shlex.split(lines[0])
    assert install[:3] == ['python3', '-m', 'pip']
    assert {'--no-index', '--no-deps', '--target'} <= set(install)
    assert install[install.index('--target') + 1] == '/tmp/site'
    assert sorted(install[-2:]) == sorted(str(p) for p in wheels.iterdir())
    assert lines[1] == f'PYTHONPATH=/tmp/site:{ROOT}'
    calls = [shlex.split(line) for line in lines[2:]]
    assert all(c[0] == 'timeout' and c[2] == 'python3' and
               c[3] == os.path.join(TOOLS, 'benchmark.py') for c in calls)
    caps = [int(c[1]) for c in calls]
    assert sum(caps) <= 580  # inside one 600 s device command
    tool = load_tool('benchmark')
    args = [tool.parse_args(c[4:]) for c in calls]
    assert [(a.model, a.tiny) for a in args] == [
        ('vit-s', True), ('vit-b', False), ('vit-l', False),
        ('swin-b', False), ('vit-b', False)]
    for a in args:
        assert (a.device, a.batch_size, a.amp, a.amp_only) == (
            'cuda', 32, 'bf16', True)
    assert [a.drop_numbers for a in args[1:]] == [[0, 32, 48, 64]] * 2 + [
        [0, 320], [0, 64]]
    assert [a.compile for a in args] == [None] * 4 + [[64]]
    # one folder per call, so no JSON overwrites another
    assert len({a.out_dir for a in args}) == 5
    assert all(a.out_dir.startswith(str(out)) for a in args)
    assert not out.exists()  # a dry run writes nothing


def test_tiny_dry_run_runs_the_same_calls_on_the_cpu(tmp_path, wheels):
    lines, _ = dry_run(tmp_path / 'out', '--tiny', wheels=wheels)
    tool = load_tool('benchmark')
    args = [tool.parse_args(shlex.split(line)[4:]) for line in lines[2:]]
    assert [a.model for a in args] == ['vit-b', 'vit-l', 'swin-b', 'vit-b']
    assert all(a.tiny and a.device == 'cpu' and a.drop_numbers is None
               for a in args)
    assert args[-1].compile == [4]


def test_without_wheels_it_says_so(tmp_path):
    lines, err = dry_run(tmp_path / 'out', wheels=tmp_path / 'none')
    assert 'no wheels in' in err and 'make gpu-wheels' in err
    assert lines[0] == f'PYTHONPATH={ROOT}'


def test_bad_usage():
    proc = subprocess.run(['bash', SCRIPT, '--tiny'], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and 'usage:' in proc.stderr


def test_wheel_list_names_one_version_of_each():
    text = open(os.path.join(TOOLS, 'gpu_wheels.sh')).read()
    pins = re.findall(r'^\s+([A-Za-z][\w.-]*)==(\S+)', text, re.M)
    names = [name.lower().replace('_', '-') for name, _ in pins]
    assert len(names) == len(set(names))
    for needed in ('mmengine', 'mmcv-lite', 'mmaction2', 'decord', 'fvcore',
                   'iopath', 'yacs', 'addict', 'yapf', 'platformdirs',
                   'termcolor', 'importlib-metadata', 'setuptools'):
        assert needed in names, needed
    runtime = open(os.path.join(ROOT, 'requirements', 'runtime.txt')).read()
    for name, version in pins:  # the stack's own pins, the same versions
        pinned = re.search(rf'^{re.escape(name)}==(\S+)', runtime, re.M)
        if pinned:
            assert pinned.group(1) == version, name
