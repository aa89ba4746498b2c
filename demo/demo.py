"""Recognize one video: top-5 class names, with STA's GFLOPs and tokens.

    python demo/demo.py CONFIG CHECKPOINT VIDEO LABEL_MAP \
        [--cfg-options model.backbone.drop_number=48] [--out-picture P]

MMAction2's ``demo/demo.py`` argument order. The recognizer is built and
loaded as ``tools/test.py`` builds it (a checkpoint that does not fill it
is refused, original VideoMAE / Video Swin files are converted, a stock
config's ``STAPruningHook`` is applied) and MMAction2's
``inference_recognizer`` runs it on the views ``tools/test.py`` evaluates
(``--quick``: 1 clip x 1 centre crop). It prints the top-5 class names with
their scores, the backbone's GFLOPs per view and tokens at the ``r`` that
ran, and the time; ``--out-picture`` draws the kept tokens of one view with
the predicted label and that ``r`` in the title.
"""
import argparse
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run from a clone without ``pip install -e .``
    sys.path.insert(0, ROOT)

import sta_mmaction  # noqa: E402,F401  (first: patches mmaction, registers)
import torch  # noqa: E402
from mmaction.apis import inference_recognizer  # noqa: E402
from mmaction.utils import register_all_modules  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dataset import Compose  # noqa: E402

from sta_mmaction.analysis import backbone_report  # noqa: E402
from sta_mmaction.analysis.speed import hardware_name  # noqa: E402
from sta_mmaction.apis import run_cli  # noqa: E402
from sta_mmaction.apis.demo import build_recognizer  # noqa: E402
from sta_mmaction.datasets import single_view_pipeline  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Recognize one video with an (STA-pruned) recognizer')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('video', help='video file')
    parser.add_argument('label', help='label map: one class name per line')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='config overrides, e.g. model.backbone.drop_number=48')
    parser.add_argument(
        '--device', default='cuda:0' if torch.cuda.is_available() else 'cpu',
        help='device (default cuda:0 if available, else cpu)')
    parser.add_argument(
        '--quick', action='store_true',
        help='1 clip x 1 centre crop instead of the config\'s views')
    parser.add_argument(
        '--out-picture', help='PNG of the tokens kept in one view')
    return parser.parse_args(argv)


def read_label_map(path: str, num_classes: int) -> list:
    """The class names, one per line; as many as the head has classes."""
    with open(path) as f:
        names = [line.strip() for line in f.read().rstrip('\n').split('\n')]
    if len(names) != num_classes:
        raise ValueError(
            f'label map {path} has {len(names)} names, but the model\'s head '
            f'has {num_classes} classes; give the label map of the dataset '
            'the checkpoint was trained on (e.g. Kinetics-400: 400 lines).')
    return names


def main(argv=None):
    args = parse_args(argv)
    for what, path in (('video', args.video), ('label map', args.label)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path} does not exist.')
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_recognizer(cfg, args.checkpoint).to(args.device)
    names = read_label_map(args.label, model.cls_head.num_classes)
    steps = (single_view_pipeline(cfg) if args.quick else
             cfg.test_dataloader.dataset.pipeline)
    inputs = []  # (views, C, T, H, W) as the backbone gets them
    hook = model.backbone.register_forward_pre_hook(
        lambda module, args: inputs.append(tuple(args[0].shape)))
    tic, cpu_tic = time.perf_counter(), time.process_time()
    result = inference_recognizer(model, args.video, Compose(steps))
    seconds = time.perf_counter() - tic
    cpu_seconds = time.process_time() - cpu_tic  # not slowed by others' load
    hook.remove()
    views, view = inputs[0][0], (1, *inputs[0][1:])
    scores = result.pred_score.float().cpu()  # (classes, )
    top = scores.topk(min(5, len(scores)))
    top5 = [(names[i], s) for s, i in zip(top.values.tolist(),
                                          top.indices.tolist())]
    backbone = model.backbone
    r = getattr(backbone, 'drop_number', None)
    strategy = getattr(backbone, 'strategy', None)
    report = backbone_report(backbone, view)
    print(f'{args.video}: top-5 of {views} views {view[1:]} '
          f'({osp.basename(args.config)}, {type(backbone).__name__} r={r}'
          f'{f", strategy {strategy}" if strategy else ""})')
    for name, score in top5:
        print(f'  {name}: {score:.4f}')
    tokens = ' -> '.join(str(n) for n in report['tokens']) or 'no pruning'
    print(f'GFLOPs per view {report["gflops"]:.2f} (backbone), tokens '
          f'{tokens} at r={r}')
    print(f'time {seconds:.2f} s wall, {cpu_seconds:.2f} s process CPU '
          f'(decoding and {views} views) on '
          f'{hardware_name(torch.device(args.device))}')
    title = None
    if args.out_picture:
        from sta_mmaction.visualization import visualize_video
        title = (f'{osp.basename(args.config)} run at r={r}: predicted '
                 f'"{top5[0][0]}" ({top5[0][1]:.3f})')
        out = visualize_video(model, cfg, args.video, args.out_picture,
                              title=title)
        print(f'kept-token picture: {out["png"]}')
    return dict(top5=top5, title=title, views=views, view=view,
                gflops=report['gflops'], tokens=report['tokens'],
                drop_number=r, seconds=seconds, cpu_seconds=cpu_seconds)


if __name__ == '__main__':
    run_cli(main)
