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
    # torch only as a minimum (sta_mmaction.utils.mmaction_compat.MIN_TORCH:
    # add_safe_globals with (object, name) pairs is 2.6's), so an installed
    # CUDA build >= 2.6 is kept; mmcv-lite, or a full mmcv 2.1 built for
    # that torch, comes with requirements/runtime.txt (DEVELOPERS.md).
    install_requires=['torch>=2.6'] + read_requirements(
        osp.join(here, 'requirements', 'runtime.txt')),
    extras_require=dict(
        torch=['torch==2.13.0'],
        tests=read_requirements(osp.join(here, 'requirements', 'tests.txt')),
        deploy=read_requirements(osp.join(here, 'requirements',
                                          'deploy.txt'))),
    license='Apache-2.0',
    zip_safe=False)
