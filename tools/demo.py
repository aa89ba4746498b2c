"""The main job on an embedded default: STA at r=0 and pruned, side by side.

    python tools/demo.py                      # generated clips, random weights
    python tools/demo.py --checkpoint CKPT --data-root DIR --ann-file FILE
    python tools/demo.py --checkpoint CKPT --video my.mp4 --label 6

With no arguments it needs nothing downloaded: it writes a few clips of
moving, textured content (3 classes) in Kinetics-400 format, saves random
ViT-S weights the way mmengine saves a checkpoint, and runs MMAction2's
standard test loop (mmengine Runner, VideoDataset, decord, AccMetric) with
STAViT at r=0 and at r=64. It then times both backbones on one view,
interleaved, prints GFLOPs per view, tokens kept, measured speed-up and the
accuracy side by side, and draws a kept-token picture. The views are 1 clip
x 1 center crop of 16 x 224 x 224 per video, so it runs in about two minutes
on two busy CPU cores; ``--full-protocol`` uses the config's own (5 clips x
3 crops).
"""
import argparse
import json
import logging
import os.path as osp
import sys
import time

try:
    import sta_mmaction  # noqa: F401  (patches mmaction, registers modules)
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import sta_mmaction  # noqa: F401

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from mmaction.utils import register_all_modules
from tabulate import tabulate

from sta_mmaction.analysis import view_shape
from sta_mmaction.analysis.timing import (hardware_name, interleaved_times,
                                          median)
from sta_mmaction.demo import (CLASSES, demo_test_cfg, make_k400_set, run_test,
                               save_random_checkpoint)
from sta_mmaction.visualization import visualize_video

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'sta_vits_k400_r0.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='STA demo: r=0 vs pruned, accuracy, GFLOPs, speed, '
        'kept tokens')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='STA test config (default: ViT-S, Kinetics-400)')
    parser.add_argument(
        '--drop-number',
        type=int,
        default=64,
        help='the pruned r, compared with r=0 (default 64)')
    parser.add_argument(
        '--checkpoint',
        help='weights (file or URL); without one the weights are RANDOM')
    data = parser.add_mutually_exclusive_group()
    data.add_argument('--video', help='one video of your own')
    data.add_argument(
        '--data-root', help='folder of K400-format videos (with --ann-file)')
    parser.add_argument(
        '--ann-file', help='K400 annotation file (<video> <label> lines)')
    parser.add_argument(
        '--label',
        type=int,
        default=0,
        help='label of --video, for its accuracy (default 0)')
    parser.add_argument(
        '--num-clips-per-class',
        type=int,
        default=2,
        help=f'generated clips per class ({len(CLASSES)} classes; '
        'default 2)')
    parser.add_argument(
        '--full-protocol',
        action='store_true',
        help='use the config\'s views per video (5 clips x 3 crops for '
        'VideoMAE) instead of 1 clip x 1 center crop')
    parser.add_argument(
        '--repeats', type=int, default=3, help='timed forwards per r')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed forwards per r')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'))
    parser.add_argument(
        '--gif', action='store_true', help='also write the picture as a GIF')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='show mmengine\'s full INFO logs of the test runs')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    args = parser.parse_args(argv)
    if args.data_root and not args.ann_file:
        parser.error('--data-root needs --ann-file')
    if args.ann_file and not args.data_root:
        parser.error('--ann-file needs --data-root')
    if args.drop_number < 1:
        parser.error(f'--drop-number={args.drop_number} must be >= 1 (r=0 '
                     'is always run as the reference)')
    if args.num_clips_per_class < 1:
        parser.error('--num-clips-per-class must be >= 1')
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    return args


def prepare_data(args):
    """(ann_file, video_root, description, first video path)."""
    if args.video:
        if not osp.isfile(args.video):
            raise FileNotFoundError(f'--video {args.video} does not exist.')
        video_root, name = osp.split(osp.abspath(args.video))
        ann = osp.join(args.work_dir, 'video_ann.txt')
        with open(ann, 'w') as f:
            f.write(f'{name} {args.label}\n')
        return ann, video_root, f'{args.video} (label {args.label})', \
            args.video
    if args.data_root:
        with open(args.ann_file) as f:
            lines = [line.split() for line in f if line.strip()]
        if not lines:
            raise ValueError(f'--ann-file {args.ann_file} lists no videos.')
        return (args.ann_file, args.data_root,
                f'{len(lines)} videos of {args.ann_file}',
                osp.join(args.data_root, lines[0][0]))
    data = make_k400_set(
        osp.join(args.work_dir, 'data'), args.num_clips_per_class)
    first = osp.join(data['video_root'], data['videos'][0][0])
    return (data['ann_file'], data['video_root'],
            f'{len(data["videos"])} generated clips ({len(CLASSES)} classes: '
            f'{", ".join(CLASSES)}) in {data["video_root"]}', first)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    register_all_modules(init_default_scope=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    mkdir_or_exist(args.work_dir)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)

    ann_file, video_root, data_text, first_video = prepare_data(args)
    if args.checkpoint:
        checkpoint, weights = args.checkpoint, f'checkpoint {args.checkpoint}'
    else:
        checkpoint = save_random_checkpoint(
            cfg, osp.join(args.work_dir, 'random_weights.pth'))
        weights = ('RANDOM WEIGHTS (no --checkpoint): accuracy is chance '
                   'level; GFLOPs, tokens and speed are real')
        print_log(
            '=' * 70 + '\nNo --checkpoint given: the model has RANDOM '
            f'weights (saved to {checkpoint}). Accuracy numbers are '
            'meaningless; GFLOPs, tokens and speed-up are not.\n' + '=' * 70,
            logger='current',
            level=logging.WARNING)

    rows, models, cfgs = [], {}, {}
    for r in (0, args.drop_number):
        run_cfg = demo_test_cfg(cfg, r, ann_file, video_root, checkpoint,
                                osp.join(args.work_dir, f'r{r}'),
                                args.full_protocol, args.verbose)
        tic = time.perf_counter()
        metrics, model = run_test(run_cfg)
        rows.append(
            dict(
                drop_number=r,
                metrics=metrics,
                test_loop_s=time.perf_counter() - tic))
        models[r], cfgs[r] = model, run_cfg

    shape = view_shape(cfgs[0])
    print_log(
        f'Timing both backbones on one {shape[1:]} view: {args.warmup} '
        f'warm-up + {args.repeats} timed forwards each, interleaved',
        logger='current')
    clip = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    clip = clip.to(next(models[0].parameters()).device)
    times = interleaved_times({
        r: m.backbone
        for r, m in models.items()
    }, clip, args.warmup, args.repeats)
    base = median(times[0])
    for row in rows:
        t = median(times[row['drop_number']])
        row.update(ms_per_view=1e3 * t, speedup=base / t)

    stem = osp.splitext(osp.basename(first_video))[0]
    png = osp.join(args.work_dir, f'kept_tokens_{stem}.png')
    gif = osp.splitext(png)[0] + '.gif' if args.gif else None
    visualize_video(
        models[args.drop_number],
        cfgs[args.drop_number],
        first_video,
        png,
        gif,
        title=f'{osp.basename(args.config)}, ' +
        ('RANDOM WEIGHTS'
         if not args.checkpoint else osp.basename(args.checkpoint)))

    backbone = cfgs[0].model.backbone.type
    protocol = ('the config\'s views per video' if args.full_protocol else
                '1 clip x 1 center crop per video (quick; the paper uses 5 '
                'clips x 3 crops: --full-protocol)')
    print()
    print(f'STA demo: {backbone} from {osp.basename(args.config)}, one view '
          f'{tuple(shape[1:])}')
    print(f'  data:     {data_text}')
    print(f'  protocol: {protocol}')
    print(f'  weights:  {weights}')
    print(f'  timing:   median of {args.repeats} interleaved forwards, '
          f'{hardware_name(clip.device)}')
    print(
        tabulate([[
            row['drop_number'], f'{row["metrics"]["gflops_per_view"]:.2f}',
            ' -> '.join(str(n) for n in row['metrics']['tokens']),
            f'{row["ms_per_view"]:.0f}', f'{row["speedup"]:.2f}x',
            f'{row["metrics"]["acc/top1"]:.3f}',
            f'{row["metrics"]["acc/top5"]:.3f}',
            f'{row["metrics"]["acc/mean1"]:.3f}'
        ] for row in rows],
                 headers=[
                     'r', 'GFLOPs/view', 'tokens (input -> each point)',
                     'ms/view', 'speed-up', 'top-1', 'top-5', 'mean acc'
                 ],
                 tablefmt='github',
                 disable_numparse=True))
    summary = osp.join(args.work_dir, 'summary.json')
    with open(summary, 'w') as f:
        json.dump(
            dict(
                config=args.config,
                checkpoint=args.checkpoint,
                random_weights=not args.checkpoint,
                data=data_text,
                full_protocol=args.full_protocol,
                view=list(shape),
                hardware=hardware_name(clip.device),
                rows=[
                    dict(
                        drop_number=row['drop_number'],
                        gflops_per_view=row['metrics']['gflops_per_view'],
                        tokens=row['metrics']['tokens'],
                        ms_per_view=row['ms_per_view'],
                        speedup=row['speedup'],
                        times_s=times[row['drop_number']],
                        test_loop_s=row['test_loop_s'],
                        metrics={
                            k: v
                            for k, v in row['metrics'].items()
                            if k.startswith('acc/')
                        }) for row in rows
                ],
                picture=png,
                gif=gif),
            f,
            indent=2)
    print(f'kept-token picture: {png}' + (f' and {gif}' if gif else ''))
    print(f'metrics JSON per run in {args.work_dir}/r*/, summary in '
          f'{summary}; total {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
