"""STARecognizer3D: MMAction2's own Python API keeps tools/test.py's promises.

``init_recognizer``, ``inference_recognizer`` and ``MMAction2Inferencer``
run unpatched on our configs (``custom_imports`` imports the plugin): a
partial file is refused unless the config opts in, original VideoMAE and
Video Swin files are converted, and random weights never predict.
"""
import pytest
import torch
from mmaction.apis import inference_recognizer, init_recognizer
from mmaction.registry import MODELS
from mmengine.config import Config

from sta_mmaction.synthetic import write_synthetic_video
from sta_mmaction.utils import CheckpointError
from ..conftest import save_mmengine_checkpoint
from ..test_tools.test_dist_test import write_tiny_config
from ..test_utils import test_swin_convert as swin
from ..test_utils.test_videomae_convert import to_original, wrap


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny config on our K400 base, a clip, its full and partial files."""
    root = tmp_path_factory.mktemp('api')
    video = write_synthetic_video(str(root / 'clip.mp4'), 0, num_frames=20,
                                  side=64)
    config = write_tiny_config(root / 'tiny.py', 'unused.txt', str(root))
    with open(config, 'a') as f:  # inference_recognizer reads test_pipeline
        f.write('test_pipeline = tiny_pipeline\n')
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    state = MODELS.build(cfg.model).state_dict()
    full = save_mmengine_checkpoint(state, root / 'full.pth')
    partial = save_mmengine_checkpoint(
        {k: v for k, v in state.items() if k.startswith('backbone.')},
        root / 'backbone_only.pth')
    return dict(config=config, video=video, state=state, full=full,
                partial=partial, root=root)


def test_our_configs_build_the_checking_recognizer(tiny):
    assert type(init_recognizer(tiny['config'], device='cpu')).__name__ == \
        'STARecognizer3D'


def test_init_recognizer_refuses_a_partial_file(tiny):
    with pytest.raises(CheckpointError, match=r'missing \(2 of the model'):
        init_recognizer(tiny['config'], tiny['partial'], device='cpu')


def test_partial_load_is_an_explicit_opt_in(tiny):
    cfg = Config.fromfile(tiny['config'])
    cfg.model.allow_partial_load = True
    model = init_recognizer(cfg, tiny['partial'], device='cpu')
    assert torch.equal(model.backbone.patch_embed.projection.weight,
                       tiny['state']['backbone.patch_embed.projection.weight'])
    assert inference_recognizer(model, tiny['video']).pred_score.shape == (
        400, )


def test_random_weights_never_predict(tiny):
    model = init_recognizer(tiny['config'], device='cpu')
    with pytest.raises(CheckpointError, match='random weights'):
        inference_recognizer(model, tiny['video'])


def test_inferencer_refuses_partial_and_random(tiny):
    from mmaction.apis.inferencers import MMAction2Inferencer
    with pytest.raises(CheckpointError, match='cls_head.fc_cls.weight'):
        MMAction2Inferencer(rec=tiny['config'], rec_weights=tiny['partial'],
                            device='cpu')
    with pytest.warns(UserWarning, match='Checkpoint is not loaded'):
        random = MMAction2Inferencer(rec=tiny['config'], device='cpu')
    with pytest.raises(CheckpointError, match='random weights'):
        random(tiny['video'])


def test_original_videomae_file_is_converted(tiny):
    path = tiny['root'] / 'videomae_original.pth'
    torch.save(wrap(to_original(tiny['state']), 'module'), path)
    model = init_recognizer(tiny['config'], str(path), device='cpu')
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in tiny['state'].items())
    full = init_recognizer(tiny['config'], tiny['full'], device='cpu')
    assert torch.equal(
        inference_recognizer(model, tiny['video']).pred_score,
        inference_recognizer(full, tiny['video']).pred_score)


def test_original_swin_file_is_converted(tmp_path):
    state = swin.random_original()
    path = tmp_path / 'swin_original.pth'
    torch.save(swin.release_file(state), path)
    cfg = Config(dict(model=dict(
        type='STARecognizer3D',
        backbone=dict(type='STASwin3D', drop_number=0, arch=swin.TINY,
                      window_size=swin.WINDOW, pretrained2d=False),
        cls_head=dict(type='I3DHead', num_classes=5,
                      in_channels=swin.TINY['embed_dims'] * 8))))
    model = init_recognizer(cfg, str(path), device='cpu')
    expected = swin.mmaction_names(state)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    assert model.weights_loaded
