"""tools/test.py's run set-up: provenance, work dirs, views, workers, logs."""
import csv
import glob
import logging
import os.path as osp
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

from sta_mmaction.apis import configure_test, default_work_dir, run_test
from sta_mmaction.models import pruning_of
from sta_mmaction.apis.testing import cap_workers, usable_cores
from sta_mmaction.engine.run_logging import OnceFilter
from sta_mmaction.utils import file_sha256

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
    # fused attention and autocast runs never overwrite fp32 ones
    ("model = dict(backbone=dict(type='STAViT', drop_number=64, "
     "fused_attention=True))\ntest_cfg = dict(type='STATestLoop', "
     "amp='bf16')", 'sta_vits_k400_r64.py', 'sta_vits_k400_r64_fused_bf16'),
    ("model = dict(backbone=dict(type='VisionTransformer'))\n"
     "custom_hooks = [dict(type='STAPruningHook', drop_number=32, "
     "fused_attention=True)]\ntest_cfg = dict(fp16=True)",
     'vit-base_k400.py', 'vit-base_k400_r32_fused_fp16'),
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
    assert (m['ann_file'], m['data_prefix']) == (tiny['ann'],
                                                 dict(video=tiny['videos']))
    assert m['ann_file_sha256'] == file_sha256(tiny['ann'])[:12]
    assert (m['precision'], m['fused_attention']) == ('fp32', False)
    # a brief console: no mmengine dumps (they are in the log file), and
    # the result, its provenance and the metrics file last
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
             if ln.strip()]
    assert len(lines) <= 60, lines
    assert not any('System environment' in ln or 'Hooks will be' in ln
                   for ln in lines)
    result, provenance, json_line = lines[-3:]
    assert 'Result: acc/top1=' in result
    assert f'{len(LABELS)} videos evaluated, 0 skipped' in result
    assert 'STAViT drop_number=2 strategy=sta' in provenance
    assert 'fp32, explicit attention' in provenance
    assert f'checkpoint {tiny["ckpt"]} (sha256 ' in provenance
    assert f'list {tiny["ann"]} (sha256 {m["ann_file_sha256"]})' in provenance
    assert json_line.endswith('Metrics JSON: ' + metrics_file(work_dir))
    log = open(metrics_file(work_dir)[:-len('json')] + 'log').read()
    assert 'System environment' in log and 'Hooks will be executed' in log


def metrics_file(work_dir):
    """The run's metrics JSON (``<work_dir>/<timestamp>/<timestamp>.json``)."""
    [path] = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    return osp.abspath(path)


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


def test_adaptive_budget_in_report_and_provenance(tiny, tmp_path):
    """rlt_threshold: every view counted, "adaptive" with mean and range."""
    cfg = configure_test(tiny['config'], tiny['ckpt'], work_dir=str(tmp_path),
                         cfg_options={'model.backbone.drop_number': 0,
                                      'model.backbone.rlt_threshold': 0.1})
    assert default_work_dir(cfg, 'tiny_r0.py').endswith('tiny_r0_rlt0.1')
    m = run_test(cfg)
    assert (m['drop_number'], m['strategy']) == (0, 'rlt')
    assert m['tokens'].startswith('adaptive (RLT rlt_threshold=0.1)')
    assert m['token_budget'] == m['tokens']
    low, high = m['gflops_range']
    assert low <= m['gflops_per_view'] <= high
    with open(m['adaptive_tokens_file']) as f:
        views = list(csv.DictReader(f))
    assert len(views) == len(LABELS)
    assert all(16 <= int(v['tokens']) <= 128 for v in views)  # 8 x 4 x 4
    mean = sum(float(v['gflops']) for v in views) / len(views)
    assert m['gflops_per_view'] == pytest.approx(mean, abs=1e-3)


def test_every_route_to_compile_or_fp16_is_checked(tmp_path):
    """--compile and a config's STATestLoop(compile=True) reach the loop for
    Swin too (it compiles since its query tiles); test_cfg.fp16 is checked."""
    swin = osp.join(ROOT, 'configs', 'sta_swint_k400_r320.py')
    for options in ({}, {'test_cfg': dict(type='STATestLoop',
                                          compile=True)}):
        cfg = configure_test(swin, 'w.pth', cfg_options=options,
                             compile=not options)
        assert cfg.test_cfg.type == 'STATestLoop'
        assert cfg.test_cfg.compile is True
    with pytest.raises(ValueError, match='test_cfg.fp16=True on cpu'):
        if torch.cuda.is_available():
            pytest.skip('this machine has CUDA, where fp16 runs')
        configure_test(swin, 'w.pth', cfg_options={'test_cfg.fp16': True})
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='--work-dir=.* is a file'):
        configure_test(swin, 'w.pth', work_dir=str(tmp_path / 'file'))


def test_dump_and_show_dir_paths_are_checked(tmp_path):
    """An output path of the wrong kind is refused before anything runs."""
    swin = osp.join(ROOT, 'configs', 'sta_swint_k400_r320.py')
    work = str(tmp_path / 'work')
    with pytest.raises(ValueError, match='--dump=.* is a folder'):
        configure_test(swin, 'w.pth', work_dir=work, dump=str(tmp_path))
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='--dump folder=.* is a file'):
        configure_test(swin, 'w.pth', work_dir=work,
                       dump=str(tmp_path / 'file' / 'scores.pkl'))
    with pytest.raises(ValueError, match='--show-dir=.* is a file'):
        configure_test(swin, 'w.pth', work_dir=work,
                       show_dir=str(tmp_path / 'file'), cfg_options={
                           'default_hooks.visualization':
                           dict(type='VisualizationHook')})
