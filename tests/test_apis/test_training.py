"""tools/train.py's set-up keeps the test path's promises (in process)."""
import pytest
from mmaction.registry import DATASETS
from mmengine.config import Config

from sta_mmaction.apis import configure_train
from sta_mmaction.datasets import AnnotationError, CorruptVideoError

from ..test_tools.test_dist_test import make_video
from ..test_tools.test_train_py import TINY


def train_cfg(tmp_path, lines, broken=False):
    """The tiny train config of test_train_py over ``lines``; ``broken``
    writes ``broken.mp4``, bytes no reader opens."""
    make_video(tmp_path / 'ok.mp4', seed=0, frames=10, size=32)
    if broken:
        (tmp_path / 'broken.mp4').write_bytes(b'\x00 not a video ' * 500)
    ann = tmp_path / 'train.txt'
    ann.write_text(''.join(f'{line}\n' for line in lines))
    return Config.fromstring(
        TINY.format(ann=str(ann), video=str(tmp_path)), '.py')


def configured_dataset(cfg, tmp_path):
    configure_train(cfg, 'tiny.py', work_dir=str(tmp_path / 'work'))
    return DATASETS.build(cfg.train_dataloader.dataset)


@pytest.mark.parametrize('lines, match', [
    (['ok.mp4 0', 'ok.mp4 2'], r"train.txt, line 2: 'ok.mp4 2': label 2 is "
     r'out of range.*\[0, 2\)'),
    (['ok.mp4 0', 'ok.mp4'], r"line 2: 'ok.mp4': no label"),
    ([], 'lists no video'),
])
def test_train_list_is_checked_against_the_head(tmp_path, lines, match):
    cfg = train_cfg(tmp_path, lines)
    with pytest.raises(AnnotationError, match=match):
        configured_dataset(cfg, tmp_path)


def test_unreadable_train_video_is_named(tmp_path):
    cfg = train_cfg(tmp_path, ['ok.mp4 0', 'broken.mp4 1'], broken=True)
    dataset = configured_dataset(cfg, tmp_path)
    assert dataset[0]['inputs'].shape[-1] == 32
    with pytest.raises(CorruptVideoError,
                       match=r'broken.mp4 \(line 2 of .*train.txt\)'):
        dataset[1]


def test_loss_guard_and_test_only_config(tmp_path):
    cfg = train_cfg(tmp_path, ['ok.mp4 0'])
    configure_train(cfg, 'tiny.py', work_dir=str(tmp_path / 'work'))
    assert [h['type'] for h in cfg.custom_hooks] == ['FiniteLossHook']
    test_only = Config(dict(model=cfg.model,
                            test_dataloader=cfg.train_dataloader))
    with pytest.raises(ValueError, match='has no train_dataloader, '
                       'train_cfg, optim_wrapper: a test-only config'):
        configure_train(test_only, 'test_only.py')
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='--work-dir=.* is a file'):
        configure_train(cfg, 'tiny.py', work_dir=str(tmp_path / 'file'))
