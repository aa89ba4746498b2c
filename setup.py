"""sta_mmaction: STA token pruning as an MMAction2 1.x plugin."""
import os.path as osp

from setuptools import find_packages, setup


def read_requirements(path):
    """Requirement lines of ``path``, following ``-r`` includes."""
    reqs = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line.startswith('-r'):
                reqs += read_requirements(
                    osp.join(osp.dirname(path), line[2:].strip()))
            elif line:
                reqs.append(line)
    return reqs


def get_version():
    scope = {}
    with open(osp.join('sta_mmaction', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


here = osp.dirname(osp.abspath(__file__))
setup(
    name='sta_mmaction',
    version=get_version(),
    description='Semantic-aware Temporal Accumulation (STA) token pruning '
    'for MMAction2 video transformers',
    long_description=open(osp.join(here, 'README.md')).read()
    if osp.exists(osp.join(here, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tools', 'configs')),
    python_requires='>=3.9',
    # torch is deliberately left out: a user with a CUDA build keeps it.
    install_requires=read_requirements(
        osp.join(here, 'requirements', 'runtime.txt')),
    extras_require=dict(
        torch=['torch==2.13.0'],
        tests=read_requirements(osp.join(here, 'requirements', 'tests.txt'))),
    license='Apache-2.0',
    zip_safe=False)
