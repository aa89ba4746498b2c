"""Shared fixtures: real clips from ../shared/data and mmengine checkpoints."""
import os.path as osp
import sys
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import sta_mmaction  # noqa: E402,F401  (patches mmaction before any import)
from mmaction.utils import register_all_modules  # noqa: E402

from sta_mmaction.utils import \
    save_mmengine_checkpoint  # noqa: E402,F401  (re-exported for the tests)

register_all_modules(init_default_scope=True)

SHARED_DATA = osp.join(osp.dirname(ROOT), 'shared', 'data')
#: Real clips and their Kinetics-400 labels (see ../shared/data/README.md).
CLIPS = {'demo.mp4': 6, 'test.mp4': 62}


@pytest.fixture
def shared_data():
    """The folder of real clips; skips when this checkout has none."""
    if not all(osp.isfile(osp.join(SHARED_DATA, c)) for c in CLIPS):
        pytest.skip(f'real clips not found in {SHARED_DATA} (a fresh clone '
                    'has no ../shared/data)')
    return SHARED_DATA


@pytest.fixture
def k400_set(shared_data, tmp_path):
    """A tiny Kinetics-400-format set: an annotation file over real clips."""
    ann = tmp_path / 'kinetics400_val_list_videos.txt'
    ann.write_text(''.join(f'{name} {label}\n'
                           for name, label in CLIPS.items()))
    return dict(ann_file=str(ann), video_root=shared_data)


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0
