"""Shared fixtures: real clips from ../shared/data and mmengine checkpoints."""
import os.path as osp
import sys
import time

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import sta_mmaction  # noqa: E402,F401  (patches mmaction before any import)
from mmaction.utils import register_all_modules  # noqa: E402

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


def save_mmengine_checkpoint(state_dict, path, cfg_text=''):
    """Write a checkpoint shaped like ``Runner.save_checkpoint`` writes it.

    Its meta and message hub hold numpy scalars, a ``ConfigDict`` and
    ``HistoryBuffer`` objects, which torch's weights-only loader refuses
    unless they are allow-listed.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance(f'ckpt-{time.time_ns()}')
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_scalar('train/lr', 1e-3)
    hub.update_info('best_score', np.float64(0.5))
    meta = dict(
        epoch=1,
        iter=10,
        cfg=cfg_text,
        seed=np.int64(0),
        experiment_name='sta-test',
        time=time.asctime(),
        mmengine_version='0.10.7',
        dataset_meta=ConfigDict(num_classes=400))
    save_checkpoint(
        dict(
            meta=meta,
            state_dict={k: v.cpu()
                        for k, v in state_dict.items()},
            message_hub=hub.state_dict()), str(path))
    return str(path)


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0
