"""The demo (``tools/demo.py``) and kept-token pictures of a config's model.

:func:`run_demo` tests the config unpruned and pruned, times both backbones
on one view, draws a kept-token picture and writes ``summary.json``;
:func:`visualize_config` is ``tools/visualize_tokens.py``.
"""
import copy
import json
import logging
import os.path as osp
import time
from typing import Dict, Optional, Tuple

import torch
from mmaction.registry import MODELS
from mmaction.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from torch import nn

from ..analysis import view_shape
from ..analysis.table import format_table
from ..analysis.speed import hardware_name, time_forwards
from ..models import apply_pruning, pruning_of, set_drop_number
from ..synthetic import DEMO_CLASSES, make_k400_set
from ..utils import load_recognizer_weights, save_mmengine_checkpoint
from .testing import configure_test, run_test

#: What a run without ``checkpoint`` says about its numbers.
RANDOM_WEIGHTS = ('RANDOM WEIGHTS (no --checkpoint): accuracy is chance '
                  'level; GFLOPs, tokens and speed are real')


def build_recognizer(cfg: Config, checkpoint: Optional[str] = None,
                     seed: int = 0,
                     drop_number: Optional[int] = None) -> nn.Module:
    """The config's recognizer, weights loaded, pruned as its test run is.

    Random weights are MMAction2's ``init_weights`` under ``seed`` (PyTorch's
    default if ``pretrained`` is set, not a download). A checkpoint is
    checked as ``tools/test.py`` checks it.

    Args:
        cfg (Config): Config with ``model``.
        checkpoint (str, optional): Path or URL. Defaults to None, random.
        seed (int): Seed of the random weights. Defaults to 0.
        drop_number (int, optional): Another ``r``, with the config's other
            settings. Defaults to None, the config's.
    """
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    if checkpoint:
        load_recognizer_weights(model, checkpoint,
                                cfg.get('allow_partial_load', False))
    elif not getattr(model.backbone, 'pretrained', None):
        # init_weights logs one INFO record per tensor; keep them out.
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    apply_pruning(model.backbone, pruning_of(cfg), drop_number)
    return model.eval()


def save_random_checkpoint(cfg: Config, path: str, seed: int = 0) -> str:
    """Save the config's recognizer with random weights, mmengine-style."""
    model = build_recognizer(cfg, None, seed, drop_number=0)
    return save_mmengine_checkpoint(
        model.state_dict(), path, cfg.pretty_text,
        meta=dict(experiment_name='sta-demo-random-weights'))


def prepare_data(work_dir: str, video: Optional[str] = None, label: int = 0,
                 data_root: Optional[str] = None,
                 ann_file: Optional[str] = None,
                 num_clips_per_class: int = 2) -> Tuple[str, str, str, str]:
    """The demo's data: one video, a K400-format folder, or generated clips.

    Args:
        work_dir (str): Where a one-video list or generated clips go.
        video (str, optional): One video of the user's. Defaults to None.
        label (int): Label of ``video``. Defaults to 0.
        data_root (str, optional): Folder of K400-format videos listed in
            ``ann_file``. Defaults to None.
        ann_file (str, optional): ``<video> <label>`` lines. Defaults to None.
        num_clips_per_class (int): Generated clips per class when neither
            ``video`` nor ``data_root`` is given. Defaults to 2.

    Returns:
        tuple[str]: Annotation file, video root, a description of the data
        and the path of its first video.
    """
    if video:
        if not osp.isfile(video):
            raise FileNotFoundError(f'--video {video} does not exist.')
        video_root, name = osp.split(osp.abspath(video))
        ann = osp.join(work_dir, 'video_ann.txt')
        with open(ann, 'w') as f:
            f.write(f'{name} {label}\n')
        return ann, video_root, f'{video} (label {label})', video
    if data_root:
        with open(ann_file) as f:
            lines = [line.split() for line in f if line.strip()]
        if not lines:
            raise ValueError(f'--ann-file {ann_file} lists no videos; give '
                             'one "<video> <label>" line per video.')
        return (ann_file, data_root, f'{len(lines)} videos of {ann_file}',
                osp.join(data_root, lines[0][0]))
    print_log(
        f'Generating {len(DEMO_CLASSES)} x {num_clips_per_class} clips in '
        f'{osp.join(work_dir, "data")}', logger='current')
    data = make_k400_set(osp.join(work_dir, 'data'), num_clips_per_class)
    first = osp.join(data['video_root'], data['videos'][0][0])
    return (data['ann_file'], data['video_root'],
            f'{len(data["videos"])} generated clips ({len(DEMO_CLASSES)} '
            f'classes: {", ".join(DEMO_CLASSES)}) in {data["video_root"]}',
            first)


def run_demo(config: str, drop_number: Optional[int] = None,
             checkpoint: Optional[str] = None,
             work_dir: str = osp.join('work_dirs', 'demo'),
             full_protocol: bool = False, repeats: int = 3,
             gif: bool = False, verbose: bool = False,
             cfg_options: Optional[Dict] = None, **data) -> Dict:
    """Test ``config`` at r=0 and pruned; time, draw, summarise.

    Args:
        config (str): A test config (STA backbone, or stock with an
            ``STAPruningHook``).
        drop_number (int, optional): The pruned r. Defaults to None, the
            config's own.
        checkpoint (str, optional): Weights (file or URL). Defaults to None:
            random weights, saved the way mmengine saves a checkpoint.
        work_dir (str): Output folder. Defaults to ``work_dirs/demo``.
        full_protocol (bool): The config's views per video instead of 1 clip
            x 1 center crop. Defaults to False.
        repeats (int): Timed forwards per r, interleaved, each after
            ``torch.utils.benchmark.Timer``'s warm-up. Defaults to 3.
        gif (bool): Also write the picture as a GIF. Defaults to False.
        verbose (bool): Keep mmengine's INFO logs of the test runs.
            Defaults to False.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        **data: :func:`prepare_data`'s data arguments.

    Returns:
        dict: The summary, as written to ``work_dir/summary.json``.
    """
    start = time.perf_counter()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    pruning = pruning_of(cfg)
    r = pruning.drop_number if drop_number is None else drop_number
    if not r or r < 1:
        raise ValueError(
            f'--drop-number={r} must be >= 1 (r=0 is always run as the '
            f'reference); {config} prunes with r={pruning.drop_number}.')
    if data.get('num_clips_per_class', 2) < 1:
        raise ValueError('--num-clips-per-class='
                         f'{data["num_clips_per_class"]} must be >= 1.')
    if repeats < 1:
        raise ValueError(f'--repeats={repeats} must be >= 1.')
    mkdir_or_exist(work_dir)
    ann_file, video_root, data_text, first_video = prepare_data(
        work_dir, **data)
    random_weights = not checkpoint
    if random_weights:
        checkpoint = save_random_checkpoint(
            cfg, osp.join(work_dir, 'random_weights.pth'))
        print_log(
            '=' * 70 + '\nNo --checkpoint given: the model has RANDOM '
            f'weights (saved to {checkpoint}). Accuracy numbers are '
            'meaningless; GFLOPs, tokens and speed-up are not.\n' + '=' * 70,
            logger='current', level=logging.WARNING)
    options = {
        'test_dataloader.num_workers': 0,
        'test_dataloader.dataset.ann_file': ann_file,
        'test_dataloader.dataset.data_prefix': dict(video=video_root),
    }
    if not verbose:
        options['log_level'] = 'WARNING'
    rows, cfgs = [], {}
    for run_r in (0, r):
        set_drop_number(cfg, run_r)
        cfgs[run_r] = configure_test(
            cfg, checkpoint, work_dir=osp.join(work_dir, f'r{run_r}'),
            cfg_options=options, quick=not full_protocol)
        tic = time.perf_counter()
        metrics = run_test(cfgs[run_r])
        _restore_info_logs()
        rows.append(dict(
            drop_number=run_r, gflops_per_view=metrics['gflops_per_view'],
            tokens=metrics['tokens'], test_loop_s=time.perf_counter() - tic,
            metrics={k: v for k, v in metrics.items()
                     if k.startswith('acc/')}))
    model = build_recognizer(cfgs[r], checkpoint)
    backbones = {0: apply_pruning(copy.deepcopy(model.backbone), pruning, 0),
                 r: model.backbone}
    shape = view_shape(cfgs[0])
    print_log(
        f'Timing both backbones on one {shape[1:]} view: {repeats} timed '
        'forwards each, interleaved', logger='current')
    clip = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    clip = clip.to(next(model.parameters()).device)
    times = time_forwards({f'r={k}': m for k, m in backbones.items()}, clip,
                          repeats)
    for row in rows:
        t = times[f'r={row["drop_number"]}']
        row.update(ms_per_view=1e3 * t.median,
                   speedup=times['r=0'].median / t.median,
                   times_s=list(t.times))
    stem = osp.splitext(osp.basename(first_video))[0]
    png = osp.join(work_dir, f'kept_tokens_{stem}.png')
    gif_file = osp.splitext(png)[0] + '.gif' if gif else None
    _draw(model, cfgs[r], first_video, png, gif_file,
          title=f'{osp.basename(config)} run at r={r}, ' +
          ('RANDOM WEIGHTS' if random_weights else osp.basename(checkpoint)))
    summary = dict(
        config=config, backbone=type(model.backbone).__name__,
        strategy=getattr(model.backbone, 'strategy', None),
        checkpoint=None if random_weights else checkpoint,
        random_weights=random_weights,
        weights=RANDOM_WEIGHTS
        if random_weights else f'checkpoint {checkpoint}',
        data=data_text, full_protocol=full_protocol, view=list(shape),
        repeats=repeats, hardware=hardware_name(clip.device), rows=rows,
        picture=png, gif=gif_file, work_dir=work_dir,
        total_s=time.perf_counter() - start)
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def _restore_info_logs() -> None:
    """After a WARNING-level run, let INFO through its (current) logger."""
    for handler in MMLogger.get_current_instance().handlers:
        if handler.level == logging.WARNING:
            handler.setLevel(logging.INFO)


def _draw(model: nn.Module, cfg: Config, video: str, out: str,
          gif: Optional[str], **kwargs) -> Dict:
    # matplotlib is imported only when a picture is drawn
    from ..visualization import visualize_video
    return visualize_video(model, cfg, video, out, gif, **kwargs)


def format_summary(summary: Dict) -> str:
    """The demo's printout of a :func:`run_demo` summary."""
    protocol = ('the config\'s views per video'
                if summary['full_protocol'] else
                '1 clip x 1 center crop per video (quick; the paper uses 5 '
                'clips x 3 crops: --full-protocol)')
    # random weights score chance (0 on the generated clips' 3 classes of
    # a 400-class head): no accuracy columns then
    accuracy = {} if summary['random_weights'] else {
        'acc/top1': 'top-1', 'acc/top5': 'top-5', 'acc/mean1': 'mean acc'}
    table = format_table(
        [[row['drop_number'], f'{row["gflops_per_view"]:.2f}',
          ' -> '.join(str(n) for n in row['tokens']),
          f'{row["ms_per_view"]:.0f}', f'{row["speedup"]:.2f}x'] +
         [f'{row["metrics"][k]:.3f}' for k in accuracy]
         for row in summary['rows']],
        headers=['r', 'GFLOPs/view', 'tokens (input -> each point)',
                 'ms/view', 'speed-up', *accuracy.values()])
    gif = f' and {summary["gif"]}' if summary['gif'] else ''
    work_dir = summary['work_dir']
    return '\n'.join([
        '',
        f'STA demo: {summary["backbone"]} from '
        f'{osp.basename(summary["config"])}, one view '
        f'{tuple(summary["view"][1:])}',
        f'  data:     {summary["data"]}',
        f'  protocol: {protocol}',
        f'  weights:  {summary["weights"]}',
        *(['  accuracy: random weights: accuracy not meaningful (pass '
           '--checkpoint)'] if summary['random_weights'] else []),
        f'  timing:   median of {summary["repeats"]} interleaved forwards, '
        f'{summary["hardware"]}',
        table,
        f'kept-token picture: {summary["picture"]}{gif}',
        f'metrics JSON per run in {work_dir}/r*/, summary in '
        f'{osp.join(work_dir, "summary.json")}; total '
        f'{summary["total_s"]:.0f} s',
    ])


def visualize_config(video: str, config: str,
                     checkpoint: Optional[str] = None,
                     drop_number: Optional[int] = None,
                     out: Optional[str] = None, gif: bool = False,
                     all_frames: bool = False, seed: int = 0,
                     cfg_options: Optional[Dict] = None) -> Dict:
    """Draw the tokens that ``config``'s model keeps in ``video``.

    Args:
        video (str): Video file.
        config (str): Test config (STA backbone, or stock with
            ``STAPruningHook``).
        checkpoint (str, optional): Weights. Defaults to None, random.
        drop_number (int, optional): r to draw. Defaults to None, the
            config's.
        out (str, optional): PNG path. Defaults to None,
            ``work_dirs/vis/<video>_<config>.png``.
        gif (bool): Also write an animated GIF. Defaults to False.
        all_frames (bool): One column per sampled frame instead of per
            temporal slice. Defaults to False.
        seed (int): Seed of random weights. Defaults to 0.
        cfg_options (dict, optional): Config overrides. Defaults to None.

    Returns:
        dict: :func:`~sta_mmaction.visualization.visualize_video`'s result.
    """
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_recognizer(cfg, checkpoint, seed, drop_number)
    if not checkpoint:
        print_log(
            'No checkpoint given: the model has random weights, so the '
            'picture shows what STA keeps for an untrained network.',
            logger='current', level=logging.WARNING)
    weights = (f'weights {osp.basename(checkpoint)}'
               if checkpoint else 'RANDOM WEIGHTS (no checkpoint given)')
    stem = (f'{osp.splitext(osp.basename(video))[0]}_'
            f'{osp.splitext(osp.basename(config))[0]}')
    out = out or osp.join('work_dirs', 'vis', f'{stem}.png')
    return _draw(model, cfg, video, out,
                 osp.splitext(out)[0] + '.gif' if gif else None,
                 title=f'{osp.basename(config)} run at r='
                 f'{getattr(model.backbone, "drop_number", None)}, {weights}',
                 all_frames=all_frames)
