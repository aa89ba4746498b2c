"""Every ``python <tool>`` command of the README and docs/ runs as written:
its tool exists and takes its arguments. Those that take minutes run
elsewhere (test_demo_py, test_sweep, test_speed); ``benchmark.py --tiny``
alone runs here up to the timing, whose own tests are in test_speed."""
import glob
import importlib.util
import os.path as osp
import re
import shlex
import sys

import pytest

from ..conftest import ROOT

PAGES = [osp.join(ROOT, 'README.md')] + sorted(
    glob.glob(osp.join(ROOT, 'docs', '*.md')) +
    glob.glob(osp.join(ROOT, 'projects', '*', 'README.md')))
#: Placeholders of the pages -> a value of the right kind.
PLACEHOLDERS = {'VIDEO': 'v.mp4', 'CKPT': 'c.pth', 'CHECKPOINT': 'c.pth',
                'CONFIG': 'configs/sta_vits_k400_r64.py', 'DIR': 'd',
                'LIST.txt': 'l.txt', 'LABEL_MAP': 'l.txt', '<config>':
                'configs/sta_vits_k400_r64.py', 'OUT_DIR': 'o'}


def commands():
    """(page, command) of every ``python <file>.py ...`` in a code block."""
    found = []
    for page in PAGES:
        with open(page) as f:
            text = f.read()
        for lang, block in re.findall(r'```(\w*)\n(.*?)```', text, re.S):
            if lang not in ('', 'bash', 'shell'):
                continue
            for line in block.replace('\\\n', ' ').splitlines():
                line = line.split(' #')[0].strip()
                if re.match(r'python \S+\.py', line):
                    found.append((osp.relpath(page, ROOT), line))
    return found


def load(script):
    spec = importlib.util.spec_from_file_location(
        'doc_' + re.sub(r'\W', '_', script), osp.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def argv_of(command):
    words = shlex.split(re.sub(r'\[[^\]]*\]', '', command))
    return words[1], [PLACEHOLDERS.get(w, w) for w in words[2:]]


def test_the_pages_have_commands():
    scripts = {argv_of(c)[0] for _, c in commands()}
    assert {'tools/test.py', 'demo/demo.py',
            'tools/analysis_tools/benchmark.py'} <= scripts


@pytest.mark.parametrize('page, command', commands())
def test_command_parses(page, command, monkeypatch):
    script, argv = argv_of(command)
    assert osp.isfile(osp.join(ROOT, script)), f'{page}: no {script}'
    tool = load(script)
    if 'argv' in tool.parse_args.__code__.co_varnames:
        tool.parse_args(argv)
    else:  # MMAction2's tools/test.py reads sys.argv
        monkeypatch.setattr(sys, 'argv', [script] + argv)
        tool.parse_args()


def test_benchmark_tiny_alone_needs_nothing_else(monkeypatch):
    """``benchmark.py --tiny`` (no config, no --model) reaches the timing
    with a tiny ViT-S."""
    tool = load('tools/analysis_tools/benchmark.py')

    class Reached(Exception):
        pass

    def timing(cfg, drop_numbers, *args, **kwargs):
        assert cfg.model.backbone.type == 'STAViT' and drop_numbers
        raise Reached

    monkeypatch.setattr(tool, 'speed_benchmark', timing)
    with pytest.raises(Reached):
        tool.main(['--tiny'])
