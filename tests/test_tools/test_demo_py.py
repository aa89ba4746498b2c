"""demo/demo.py CONFIG CKPT VIDEO LABEL_MAP on a real clip: class names from
the label map, GFLOPs and tokens at the r that ran, the picture's title."""
import contextlib
import importlib.util
import io
import os.path as osp

import pytest
from matplotlib.image import imread

from ..conftest import ROOT, save_mmengine_checkpoint
from .test_dist_test import write_tiny_config

#: The random head is pushed to this class, so the top-1 name is known:
#: the mechanics are tested, not the (random) model.
PUSHED = 6


def demo_main(argv):
    """demo/demo.py's main in this process: its result and stdout."""
    spec = importlib.util.spec_from_file_location(
        'demo_demo_py', osp.join(ROOT, 'demo', 'demo.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = tool.main(argv)
    return result, out.getvalue()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    import torch
    from mmaction.registry import MODELS
    from mmengine.config import Config
    root = tmp_path_factory.mktemp('demo_py')
    config = write_tiny_config(root / 'tiny.py', 'unused.txt', str(root),
                               drop_number=4)
    torch.manual_seed(0)
    state = MODELS.build(Config.fromfile(config).model).state_dict()
    state['cls_head.fc_cls.bias'][PUSHED] += 5.0
    return dict(root=root, config=config,
                ckpt=save_mmengine_checkpoint(state, root / 'tiny.pth'))


def test_top5_names_gflops_tokens_and_picture(shared_data, tiny):
    label_map = osp.join(shared_data, 'label_map_k400.txt')
    with open(label_map) as f:
        names = f.read().splitlines()
    picture = tiny['root'] / 'kept.png'
    result, out = demo_main([
        tiny['config'], tiny['ckpt'],
        osp.join(shared_data, 'demo.mp4'), label_map, '--cfg-options',
        'model.backbone.drop_number=8', '--out-picture', str(picture)])
    top5 = [name for name, _ in result['top5']]
    assert top5[0] == names[PUSHED] == 'arm wrestling'
    assert len(set(top5)) == 5 and set(top5) <= set(names)
    lines = out.splitlines()
    assert 'top-5 of 1 views (3, 16, 64, 64)' in lines[0]
    assert 'STAViT r=8' in lines[0]  # the --cfg-options r, not the config's
    assert lines[1].startswith('  arm wrestling: ')
    assert result['tokens'] == [128, 64, 32, 16] and result['drop_number'] == 8
    assert f'GFLOPs per view {result["gflops"]:.2f}' in out
    assert 'tokens 128 -> 64 -> 32 -> 16 at r=8' in out
    assert ' s wall, ' in out and 'process CPU' in out
    assert imread(str(picture)).ndim == 3
    assert result['title'].startswith('tiny.py run at r=8: predicted "arm '
                                      'wrestling"')


def test_label_map_must_match_the_head(tiny):
    short = tiny['root'] / 'three_names.txt'
    short.write_text('a\nb\nc\n')
    with pytest.raises(ValueError, match='has 3 names, but the model'):
        demo_main([tiny['config'], tiny['ckpt'], str(short), str(short)])
