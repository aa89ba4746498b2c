"""tools/dist_test.sh: 2 gloo CPU processes give the metrics of 1 process.

Five short generated clips (an odd number) with a batch size of 2 make
mmengine's ``DefaultSampler`` pad the second rank with a repeated sample,
which ``collect_results`` must cut off again.
"""
import glob
import json
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from sta_mmaction.synthetic import write_synthetic_video

from ..conftest import ROOT, save_mmengine_checkpoint

#: label 7 is what the biased head predicts, so top-1 is 3 / 5 = 0.6
LABELS = [7, 7, 3, 7, 11]


def make_video(path, seed, frames=20, size=64):
    """A short generated clip (the package's one generator)."""
    return write_synthetic_video(path, seed, num_frames=frames, side=size)


def make_video_set(root, labels=LABELS, extra=()):
    """Generated clips and their annotation file, in Kinetics-400 format.

    Args:
        root (Path): Folder for the clips and the annotation file.
        labels (list[int]): One label per generated clip.
        extra (list[tuple]): ``(file name, label)`` of further lines, for
            files the caller writes itself.
    """
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, label in enumerate(labels):
        make_video(root / f'clip_{i}.mp4', seed=i)
        lines.append(f'clip_{i}.mp4 {label}')
    lines += [f'{name} {label}' for name, label in extra]
    ann = root / 'val_list.txt'
    ann.write_text('\n'.join(lines) + '\n')
    return str(ann), str(root)


def write_tiny_config(path, ann_file, video_root, drop_number=4):
    """A config that inherits the K400 one, with a tiny STAViT and pipeline."""
    base = osp.join(ROOT, 'configs', '_base_', 'sta_vit_k400.py')
    path.write_text(
        textwrap.dedent(f"""\
        _base_ = [{base!r}]
        model = dict(
            backbone=dict(img_size=64, embed_dims=48, depth=3, num_heads=4,
                          drop_number={drop_number}),
            cls_head=dict(in_channels=48))
        tiny_pipeline = [
            dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=16, frame_interval=1,
                 num_clips=1, test_mode=True),
            dict(type='DecordDecode'),
            dict(type='Resize', scale=(-1, 64)),
            dict(type='CenterCrop', crop_size=64),
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackActionInputs'),
        ]
        test_dataloader = dict(
            batch_size=2,
            num_workers=0,
            persistent_workers=False,
            dataset=dict(ann_file={ann_file!r},
                         data_prefix=dict(video={video_root!r}),
                         pipeline=tiny_pipeline))
        default_hooks = dict(logger=dict(interval=1))
        """))
    return str(path)


def tiny_checkpoint(config, path):
    """Random tiny weights; the head leans to label 7 so top-1 is not 0."""
    from mmengine.config import Config
    from mmaction.registry import MODELS
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    state['cls_head.fc_cls.bias'][7] += 5.0
    return save_mmengine_checkpoint(state, path, cfg.pretty_text)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


#: Words of a native crash (an abort in C++ code) in a process's stderr.
CRASH_WORDS = ('terminate called', 'what():', 'Abort', 'Segmentation',
               'SIGABRT', 'Exception raised from')


def run(cmd, env=None, ok=True, cwd=ROOT):
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        errors='replace',  # decord echoes undecodable bytes to stderr
        cwd=cwd,
        env=env,
        timeout=300)
    if ok and proc.returncode != 0:
        # a crash's own words sit mid-stream, before torchrun's summary
        crash = [
            line for line in proc.stderr.splitlines()
            if any(w in line for w in CRASH_WORDS)
        ]
        raise AssertionError(f'{cmd} failed:\n' + proc.stdout[-4000:] +
                             proc.stderr[-6000:] + '\ncrash lines:\n' +
                             '\n'.join(crash[:20]))
    return proc


def run_test_py(config, ckpt, work_dir, *options, ok=True):
    return run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), config, ckpt, '--work-dir',
        str(work_dir), *options
    ], ok=ok)


def run_dist_test(config, ckpt, work_dir, *options):
    """``bash tools/dist_test.sh CONFIG CKPT 2`` on gloo, on a free port."""
    # dist_test.sh runs `python`: make it this interpreter
    path = osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']
    env = dict(
        os.environ, PATH=path, PORT=str(free_port()), OMP_NUM_THREADS='1')
    return run([
        'bash',
        osp.join(ROOT, 'tools', 'dist_test.sh'), config, ckpt, '2',
        '--work-dir',
        str(work_dir), *options, '--cfg-options',
        'env_cfg.dist_cfg.backend=gloo'
    ],
               env=env)


def last_metrics(work_dir):
    """The metrics line of the run's JSON log."""
    logs = [
        osp.join(d, f) for d, _, fs in os.walk(work_dir) for f in fs
        if f.endswith('.json') and f != 'scalars.json'
    ]
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return json.loads(f.read().splitlines()[-1])


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    ann, videos = make_video_set(root / 'videos')
    config = write_tiny_config(root / 'tiny_sta.py', ann, videos)
    ckpt = tiny_checkpoint(config, root / 'tiny.pth')
    return dict(root=root, config=config, ckpt=ckpt)


@pytest.fixture(scope='module')
def one_process(tiny_set):
    """Metrics and dumped predictions of one plain process."""
    root = tiny_set['root']
    run_test_py(tiny_set['config'], tiny_set['ckpt'], root / 'one', '--dump',
                str(root / 'one.pkl'))
    with open(root / 'one.pkl', 'rb') as f:
        dumped = pickle.load(f)
    return last_metrics(root / 'one'), dumped


#: Metrics that must agree exactly between 1 and 2 processes.
ACC_KEYS = ('acc/top1', 'acc/top5', 'acc/mean1')


def test_two_gloo_processes_match_one(tiny_set, one_process):
    root, config, ckpt = tiny_set['root'], tiny_set['config'], \
        tiny_set['ckpt']
    m1, d1 = one_process
    two = run_dist_test(config, ckpt, root / 'two', '--dump',
                        str(root / 'two.pkl'))
    log = two.stdout + two.stderr
    # mmengine's environment dump: in the log file, off the console
    [log_file] = glob.glob(str(root / 'two' / '*' / '*.log'))
    assert 'Distributed training: True' in open(log_file).read()
    assert 'Distributed training: True' not in log, log[-3000:]
    # 5 samples on 2 ranks: 3 each (one padded), batches of 2 -> 2 iterations
    assert 'Epoch(test) [2/2]' in log, log[-3000:]

    m2 = last_metrics(root / 'two')
    # rank 0 alone writes the JSON, with what rank-0-only hooks add to it
    keys = ACC_KEYS + ('gflops_per_view', 'tokens')
    assert {k: m1[k] for k in keys} == {k: m2[k] for k in keys}
    assert m1['acc/top1'] == pytest.approx(0.6)
    with open(root / 'two.pkl', 'rb') as f:
        d2 = pickle.load(f)
    # 5 samples each, in dataset order: the padded repeat was cut off
    assert len(d1) == len(d2) == 5
    assert [int(d['gt_label']) for d in d2] == LABELS
    for a, b in zip(d1, d2):
        torch.testing.assert_close(
            a['pred_score'], b['pred_score'], atol=1e-5, rtol=1e-5)


def test_two_gloo_processes_skip_like_one(tiny_set, one_process):
    """With --skip-corrupt-videos, ranks agree on what was skipped.

    Seven lines (odd) with an unreadable file first: rank 1's padded sample
    is a repeat of that skipped one, and must neither be counted twice nor
    shift the other results. The evaluated clips are the 5 of the plain
    run, so the accuracy must be exactly that run's.
    """
    root, ckpt = tiny_set['root'], tiny_set['ckpt']
    videos = root / 'videos'
    (videos / 'broken.mp4').write_bytes(b'\x00' * 512)
    lines = ['broken.mp4 7']
    lines += [f'clip_{i}.mp4 {label}' for i, label in enumerate(LABELS)]
    lines.append('gone.mp4 7')
    ann = root / 'with_broken.txt'
    ann.write_text('\n'.join(lines) + '\n')
    config = write_tiny_config(root / 'tiny_broken.py', str(ann),
                               str(videos))
    run_dist_test(config, ckpt, root / 'skip_two', '--skip-corrupt-videos')
    m1, m2 = one_process[0], last_metrics(root / 'skip_two')
    assert {k: m1[k] for k in ACC_KEYS} == {k: m2[k] for k in ACC_KEYS}
    assert m2['num_evaluated'] == 5 and m2['num_skipped'] == 2
    # counts, not floats, in the JSON
    assert type(m2['num_evaluated']) is int and type(m2['num_skipped']) is int
    expected = [str(videos / 'broken.mp4'), str(videos / 'gone.mp4')]
    assert m2['skipped_videos'] == expected
    listed = (root / 'skip_two' / 'skipped_videos.txt').read_text()
    assert listed.splitlines() == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU machine')
def test_nccl_on_cpu_is_a_clear_error(tiny_set, tmp_path):
    """Without CUDA, the default nccl backend is named, with the fix."""
    env = dict(
        os.environ,
        RANK='0',
        LOCAL_RANK='0',
        WORLD_SIZE='1',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(free_port()))
    proc = run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), tiny_set['config'],
        tiny_set['ckpt'], '--work-dir',
        str(tmp_path), '--launcher', 'pytorch'
    ],
               env=env,
               ok=False)
    assert proc.returncode != 0
    assert "error: env_cfg.dist_cfg.backend='nccl' needs CUDA" \
        in proc.stderr
    assert 'env_cfg.dist_cfg.backend=gloo' in proc.stderr
