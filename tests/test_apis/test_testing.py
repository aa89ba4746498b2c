"""tools/test.py's run set-up: provenance, work dirs, views, workers, logs."""
import logging
import os.path as osp
import sys
import textwrap

import pytest
from mmengine.config import Config

from sta_mmaction.apis import default_work_dir
from sta_mmaction.models import pruning_of
from sta_mmaction.apis.testing import cap_workers, usable_cores
from sta_mmaction.engine.run_logging import OnceFilter

from ..conftest import ROOT
from ..test_tools.test_dist_test import (LABELS, last_metrics, make_video_set,
                                         run, tiny_checkpoint,
                                         write_tiny_config)

TEST_PY = osp.join(ROOT, 'tools', 'test.py')


def cfg_of(text):
    return Config.fromstring(textwrap.dedent(text), '.py')


@pytest.mark.parametrize('text, config, expected', [
    ("model = dict(backbone=dict(type='STAViT', drop_number=64))",
     'sta_vits_k400_r64.py', 'sta_vits_k400_r64'),
    ("model = dict(backbone=dict(type='STAViT', drop_number=48))",
     'sta_vits_k400_r64.py', 'sta_vits_k400_r48'),
    ("model = dict(backbone=dict(type='STAViT', drop_number=48, "
     "strategy='random'))", 'sta_vits_k400_r64.py',
     'sta_vits_k400_r48_random'),
    ("model = dict(backbone=dict(type='STASwin3D', drop_number=320))",
     'sta_swint_k400_r320.py', 'sta_swint_k400_r320'),
    ("model = dict(backbone=dict(type='VisionTransformer'))\n"
     "custom_hooks = [dict(type='STAPruningHook', drop_number=32)]",
     'vit-base_k400.py', 'vit-base_k400_r32'),
    ("model = dict(backbone=dict(type='VisionTransformer'))",
     'vit-base_k400.py', 'vit-base_k400'),
])
def test_work_dir_names_the_r_that_runs(text, config, expected):
    cfg = cfg_of(text)
    assert default_work_dir(cfg, config) == osp.join('work_dirs', expected)


def test_work_dir_of_quick_protocol():
    cfg = cfg_of("model = dict(backbone=dict(type='STAViT', drop_number=4))\n"
                 "test_protocol = 'quick'")
    assert default_work_dir(cfg, 'a_r4.py').endswith('a_r4_quick')


def test_pruning_of_hook_strategy_falls_back_to_backbone():
    cfg = cfg_of("model = dict(backbone=dict(type='STAViT', strategy="
                 "'semantic'))\n"
                 "custom_hooks = [dict(type='STAPruningHook', drop_number=8)]")
    assert pruning_of(cfg)[1:3] == (8, 'semantic')


def test_workers_capped_at_cores():
    cfg = cfg_of('test_dataloader = dict(num_workers=1000)')
    cap_workers(cfg)
    assert cfg.test_dataloader.num_workers == usable_cores()
    cfg = cfg_of('test_dataloader = dict(num_workers=0)')
    cap_workers(cfg)
    assert cfg.test_dataloader.num_workers == 0


def test_no_workers_turns_persistent_workers_off():
    """``num_workers=0`` on a stock config must not stop the DataLoader."""
    cfg = cfg_of('test_dataloader = dict(num_workers=0, '
                 'persistent_workers=True)')
    cap_workers(cfg)
    assert cfg.test_dataloader.persistent_workers is False


def test_repeated_warning_shown_once():
    logger = logging.getLogger('sta-once-test')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.addFilter(OnceFilter(('"FileClient" will be deprecated', )))
    for _ in range(3):
        logger.warning('"FileClient" will be deprecated in future.')
    logger.warning('another message')
    logger.warning('another message')
    assert [r.getMessage()[:11] for r in records] == [
        '"FileClient', 'another mes', 'another mes'
    ]


def test_repeated_warning_dropped_in_dataloader_workers(monkeypatch):
    """Each worker holds its own copy of the filter: workers drop it."""
    from sta_mmaction.engine import run_logging
    monkeypatch.setattr(run_logging, 'get_worker_info', lambda: object())
    once = OnceFilter(('"FileClient" will be deprecated', ))
    record = logging.LogRecord('x', logging.WARNING, __file__, 1,
                               '"FileClient" will be deprecated', None, None)
    assert not once.filter(record)
    other = logging.LogRecord('x', logging.WARNING, __file__, 1, 'other',
                              None, None)
    assert once.filter(other)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('apis')
    ann, videos = make_video_set(root / 'videos')
    config = write_tiny_config(root / 'tiny_sta_r4.py', ann, videos)
    ckpt = tiny_checkpoint(config, root / 'tiny.pth')
    return dict(root=root, ann=ann, videos=videos, config=config, ckpt=ckpt)


def test_provenance_in_json_and_last_line(tiny):
    """The metrics say what produced them; the result line comes last."""
    root = tiny['root']
    proc = run([
        sys.executable, TEST_PY, tiny['config'], tiny['ckpt'],
        '--cfg-options', 'model.backbone.drop_number=2'
    ],
               cwd=root)
    # the default work dir names the r that ran, not the config's r=4
    work_dir = root / 'work_dirs' / 'tiny_sta_r2'
    m = last_metrics(work_dir)
    assert m['backbone'] == 'STAViT'
    assert (m['drop_number'], m['strategy'], m['seed']) == (2, 'sta', None)
    assert m['config'] == tiny['config']
    assert m['checkpoint'] == tiny['ckpt']
    assert len(m['checkpoint_sha256']) == 12
    assert m['views_per_video'] == 1 and m['protocol'] == 'config'
    assert (m['num_evaluated'], m['num_skipped']) == (len(LABELS), 0)
    last = [ln for ln in (proc.stdout + proc.stderr).splitlines()
            if ln.strip()][-1]
    assert 'Result: acc/top1=' in last
    assert 'STAViT drop_number=2 strategy=sta' in last
    assert f'checkpoint {tiny["ckpt"]} (sha256 ' in last
    assert f'{len(LABELS)} videos evaluated, 0 skipped' in last


def write_views_config(path, tiny, crop=64):
    """The tiny config with 2 clips x 3 crops of side ``crop`` per video."""
    path.write_text(
        textwrap.dedent(f"""\
        _base_ = [{tiny['config']!r}]
        tiny_pipeline = [
            dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=16, frame_interval=1,
                 num_clips=2, test_mode=True),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(-1, 64)),
            dict(type='ThreeCrop', crop_size={crop}),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs'),
        ]
        test_dataloader = dict(dataset=dict(pipeline=tiny_pipeline))
        """))
    return str(path)


def test_quick_runs_one_view_per_video(tiny):
    root = tiny['root']
    config = write_views_config(root / 'views.py', tiny)
    run([
        sys.executable, TEST_PY, config, tiny['ckpt'], '--work-dir',
        str(root / 'full')
    ])
    run([
        sys.executable, TEST_PY, config, tiny['ckpt'], '--work-dir',
        str(root / 'quick'), '--quick'
    ])
    full, quick = last_metrics(root / 'full'), last_metrics(root / 'quick')
    assert (full['views_per_video'], full['protocol']) == (6, 'config')
    assert (quick['views_per_video'], quick['protocol']) == (1, 'quick')


def test_report_describes_the_view_that_ran(tiny):
    """A 48-pixel crop on a 64-pixel backbone is reported as 48 pixels."""
    root = tiny['root']
    config = write_views_config(root / 'crop48.py', tiny, crop=48)
    run([
        sys.executable, TEST_PY, config, tiny['ckpt'], '--work-dir',
        str(root / 'crop48'), '--quick'
    ])
    m = last_metrics(root / 'crop48')
    assert m['view_shape'] == [1, 3, 16, 48, 48]
    # 8 slices of a 3 x 3 grid, r=4 per group at each point
    assert m['tokens'][0] == 72


def test_offline_url_is_one_line(tiny, tmp_path):
    """A checkpoint URL that cannot be fetched: one line, no traceback."""
    url = 'http://127.0.0.1:9/weights/tiny_20230101-abcdef12.pth'
    proc = run([
        sys.executable, TEST_PY, tiny['config'], url, '--work-dir',
        str(tmp_path)
    ],
               ok=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert 'could not download' in last and url in last
    assert 'tools/test.py CONFIG' in last
