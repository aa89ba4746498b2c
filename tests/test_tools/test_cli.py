"""Every tool's command line: it starts, and a bad setting is one line."""
import glob
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import ROOT

#: Tools whose other tests call the package, not the script.
HELP_ONLY = [
    'visualize_tokens.py', 'model_converters/convert_videomae_checkpoint.py',
    'analysis_tools/benchmark.py'
]


def run_tool(tool, *args, cwd=ROOT):
    return subprocess.run([sys.executable,
                           osp.join(ROOT, 'tools', tool), *args],
                          capture_output=True,
                          text=True,
                          cwd=cwd)


@pytest.mark.parametrize('tool', HELP_ONLY)
def test_tool_starts(tool):
    proc = run_tool(tool, '--help')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith('usage:')


def test_bad_setting_is_one_line_without_traceback(tmp_path):
    """run_cli: a ValueError of get_flops.py is `tool: error: ...`, exit 1."""
    config = tmp_path / 'stock_vit.py'
    config.write_text(
        "model = dict(type='Recognizer3D', backbone=dict(\n"
        "    type='VisionTransformer', img_size=64, patch_size=16,\n"
        '    embed_dims=48, depth=3, num_heads=4, num_frames=16))\n')
    proc = run_tool('analysis_tools/get_flops.py', str(config),
                    '--drop-numbers', '0', '2', '--shape', '1', '3', '16',
                    '64', '64')
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith('get_flops.py: error: ')
    assert 'STAPruningHook' in line


def test_no_tool_edits_sys_path():
    """The package is installed (`make venv`, README's `pip install -e .`).

    Tools import it like any installed package; none puts the checkout on
    ``sys.path`` itself.
    """
    tools = glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)
    editing = [
        osp.relpath(t, ROOT) for t in tools
        if 'sys.path' in open(t).read()
    ]
    assert not editing, f'{editing} edit sys.path'
