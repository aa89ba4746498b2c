"""The demo's whole job: r=0 against a pruned r, on any data or generated.

:func:`run_demo` runs MMAction2's standard test loop twice (STA at r=0 and
pruned), times both backbones on one view, draws a kept-token picture and
writes ``summary.json``; :func:`format_summary` is what the tool prints.
"""
import json
import logging
import os.path as osp
import time
from typing import Dict, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from mmaction.utils import register_all_modules

from ..analysis import view_shape
from ..analysis.table import format_table
from ..analysis.timing import hardware_name, interleaved_times, median
from ..visualization import visualize_video
from .protocol import demo_test_cfg, run_test, save_random_checkpoint
from .synthetic import DEMO_CLASSES, make_k400_set

#: What a run without ``checkpoint`` says about its numbers.
RANDOM_WEIGHTS = ('RANDOM WEIGHTS (no --checkpoint): accuracy is chance '
                  'level; GFLOPs, tokens and speed are real')


def prepare_data(work_dir: str,
                 video: Optional[str] = None,
                 label: int = 0,
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
        ann_file (str, optional): ``<video> <label>`` lines. Defaults to
            None.
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
    data = make_k400_set(osp.join(work_dir, 'data'), num_clips_per_class)
    first = osp.join(data['video_root'], data['videos'][0][0])
    return (data['ann_file'], data['video_root'],
            f'{len(data["videos"])} generated clips ({len(DEMO_CLASSES)} '
            f'classes: {", ".join(DEMO_CLASSES)}) in {data["video_root"]}',
            first)


def run_demo(config: str,
             drop_number: int = 64,
             checkpoint: Optional[str] = None,
             work_dir: str = osp.join('work_dirs', 'demo'),
             full_protocol: bool = False,
             repeats: int = 3,
             warmup: int = 1,
             gif: bool = False,
             verbose: bool = False,
             cfg_options: Optional[Dict] = None,
             **data) -> Dict:
    """Test ``config`` at r=0 and at ``drop_number``; time, draw, summarise.

    Args:
        config (str): An STA test config.
        drop_number (int): The pruned r. Defaults to 64.
        checkpoint (str, optional): Weights (file or URL). Defaults to None:
            random weights, saved the way mmengine saves a checkpoint.
        work_dir (str): Output folder. Defaults to ``work_dirs/demo``.
        full_protocol (bool): The config's views per video instead of 1 clip
            x 1 center crop. Defaults to False.
        repeats (int): Timed forwards per r. Defaults to 3.
        warmup (int): Untimed forwards per r. Defaults to 1.
        gif (bool): Also write the picture as a GIF. Defaults to False.
        verbose (bool): Keep mmengine's INFO logs of the test runs.
            Defaults to False.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        **data: :func:`prepare_data`'s data arguments (``video``, ``label``,
            ``data_root``, ``ann_file``, ``num_clips_per_class``).

    Returns:
        dict: The summary, as written to ``work_dir/summary.json``.
    """
    if drop_number < 1:
        raise ValueError(f'--drop-number={drop_number} must be >= 1 (r=0 is '
                         'always run as the reference).')
    if data.get('num_clips_per_class', 2) < 1:
        raise ValueError('--num-clips-per-class='
                         f'{data["num_clips_per_class"]} must be >= 1.')
    if repeats < 1 or warmup < 0:
        raise ValueError(f'--repeats={repeats} must be >= 1 and --warmup='
                         f'{warmup} >= 0.')
    start = time.perf_counter()
    register_all_modules(init_default_scope=True)
    mkdir_or_exist(work_dir)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    ann_file, video_root, data_text, first_video = prepare_data(
        work_dir, **data)
    weights = f'checkpoint {checkpoint}'
    if not checkpoint:
        checkpoint = save_random_checkpoint(
            cfg, osp.join(work_dir, 'random_weights.pth'))
        weights = RANDOM_WEIGHTS
        print_log(
            '=' * 70 + '\nNo --checkpoint given: the model has RANDOM '
            f'weights (saved to {checkpoint}). Accuracy numbers are '
            'meaningless; GFLOPs, tokens and speed-up are not.\n' + '=' * 70,
            logger='current',
            level=logging.WARNING)

    rows, models, cfgs = [], {}, {}
    for r in (0, drop_number):
        run_cfg = demo_test_cfg(cfg, r, ann_file, video_root, checkpoint,
                                osp.join(work_dir, f'r{r}'), full_protocol,
                                verbose)
        tic = time.perf_counter()
        metrics, models[r] = run_test(run_cfg)
        cfgs[r] = run_cfg
        rows.append(
            dict(
                drop_number=r,
                gflops_per_view=metrics['gflops_per_view'],
                tokens=metrics['tokens'],
                test_loop_s=time.perf_counter() - tic,
                metrics={k: v
                         for k, v in metrics.items() if k.startswith('acc/')}))

    shape = view_shape(cfgs[0])
    print_log(
        f'Timing both backbones on one {shape[1:]} view: {warmup} warm-up + '
        f'{repeats} timed forwards each, interleaved',
        logger='current')
    clip = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    clip = clip.to(next(models[0].parameters()).device)
    times = interleaved_times({r: m.backbone
                               for r, m in models.items()}, clip, warmup,
                              repeats).wall
    for row in rows:
        t = median(times[row['drop_number']])
        row.update(
            ms_per_view=1e3 * t,
            speedup=median(times[0]) / t,
            times_s=times[row['drop_number']])

    stem = osp.splitext(osp.basename(first_video))[0]
    png = osp.join(work_dir, f'kept_tokens_{stem}.png')
    gif_file = osp.splitext(png)[0] + '.gif' if gif else None
    random_weights = weights == RANDOM_WEIGHTS
    visualize_video(
        models[drop_number],
        cfgs[drop_number],
        first_video,
        png,
        gif_file,
        title=f'{osp.basename(config)}, ' +
        ('RANDOM WEIGHTS' if random_weights else osp.basename(checkpoint)))
    summary = dict(
        config=config,
        backbone=cfgs[0].model.backbone.type,
        checkpoint=None if random_weights else checkpoint,
        random_weights=random_weights,
        weights=weights,
        data=data_text,
        full_protocol=full_protocol,
        view=list(shape),
        repeats=repeats,
        hardware=hardware_name(clip.device),
        rows=rows,
        picture=png,
        gif=gif_file,
        work_dir=work_dir,
        total_s=time.perf_counter() - start)
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def format_summary(summary: Dict) -> str:
    """The demo's printout of a :func:`run_demo` summary."""
    protocol = ('the config\'s views per video'
                if summary['full_protocol'] else
                '1 clip x 1 center crop per video (quick; the paper uses 5 '
                'clips x 3 crops: --full-protocol)')
    table = format_table(
        [[
            row['drop_number'], f'{row["gflops_per_view"]:.2f}',
            ' -> '.join(str(n) for n in row['tokens']),
            f'{row["ms_per_view"]:.0f}', f'{row["speedup"]:.2f}x',
            f'{row["metrics"]["acc/top1"]:.3f}',
            f'{row["metrics"]["acc/top5"]:.3f}',
            f'{row["metrics"]["acc/mean1"]:.3f}'
        ] for row in summary['rows']],
        headers=[
            'r', 'GFLOPs/view', 'tokens (input -> each point)', 'ms/view',
            'speed-up', 'top-1', 'top-5', 'mean acc'
        ])
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
        f'  timing:   median of {summary["repeats"]} interleaved forwards, '
        f'{summary["hardware"]}',
        table,
        f'kept-token picture: {summary["picture"]}{gif}',
        f'metrics JSON per run in {work_dir}/r*/, summary in '
        f'{osp.join(work_dir, "summary.json")}; total '
        f'{summary["total_s"]:.0f} s',
    ])
