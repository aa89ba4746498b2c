"""Export a config's (pruned) recognizer to ONNX and check it in onnxruntime.

    python tools/deployment/export_onnx.py configs/sta_vits_k400_r64.py \
        vits_k400.pth -o work_dirs/onnx/vits_r64.onnx

The recognizer is built as ``tools/test.py`` builds it (checked loading,
pruning by the STA backbone or an ``STAPruningHook``); backbone and head are
exported at the config's test view with a dynamic batch. The file is then
run in onnxruntime and compared with PyTorch (max abs difference of the
scores, the same top-5, the same kept tokens); a mismatch beyond ``--atol``
exits 1. The file's metadata records r, strategy, view shape and the
checkpoint's SHA-256. Needs ``pip install -e .[deploy]``; see
``docs/deployment.md``.
"""
import argparse
import os
import os.path as osp

import sta_mmaction  # noqa: F401  (first: patches mmaction, registers)
from mmaction.utils import register_all_modules
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from sta_mmaction.analysis.speed import setup_cpu
from sta_mmaction.apis import run_cli
from sta_mmaction.apis.export import export_config
from sta_mmaction.deployment import ATOL, CPU_PROVIDER, ParityError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='test config file')
    p.add_argument('checkpoint', nargs='?',
                   help="file or URL; defaults to the config's load_from")
    p.add_argument('-o', '--out', required=True, help='the .onnx file')
    p.add_argument('--program', help='also save the torch.export '
                   'ExportedProgram here (.pt2)')
    p.add_argument('--random-weights', action='store_true',
                   help='no checkpoint: check that the graph exports')
    p.add_argument('--fused-attention', action='store_true')
    p.add_argument('--video', help='check on a view of this video too')
    p.add_argument('--shape', type=int, nargs=4, metavar=('C', 'T', 'H', 'W'),
                   help="the view; defaults to the test pipeline's")
    p.add_argument('--batch', type=int, default=2,
                   help='views of the traced example (>= 2)')
    p.add_argument('--verify-batch', type=int, default=3,
                   help='views of the onnxruntime check')
    p.add_argument('--static-batch', action='store_true',
                   help='a file for --batch views only')
    p.add_argument('--opset', type=int, help="ONNX opset (default: torch's)")
    p.add_argument('--atol', type=float, default=ATOL,
                   help='largest |ONNX - PyTorch| score')
    p.add_argument('--provider', default=CPU_PROVIDER,
                   help='onnxruntime execution provider of the check')
    p.add_argument('--threads', type=int, help='torch and onnxruntime '
                   'CPU threads')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_cpu(args.threads)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options or {})
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    result = export_config(
        cfg, args.out, args.checkpoint, random_weights=args.random_weights,
        fused_attention=args.fused_attention, program=args.program,
        video=args.video, shape=args.shape, batch=args.batch,
        verify_batch=args.verify_batch, dynamic_batch=not args.static_batch,
        opset=args.opset, atol=args.atol, provider=args.provider)
    meta, parity = result['metadata'], result['parity']
    print_log(
        f'wrote {result["path"]} ({result["size_mb"]:.1f} MiB, opset '
        f'{result["opset"]}): {meta["backbone"]} r='
        f'{meta["sta.drop_number"]} strategy={meta["sta.strategy"]}, view '
        f'{meta["view_shape"]}, inputs {result["inputs"]}, outputs '
        f'{result["outputs"]}, checkpoint sha256 '
        f'{meta["checkpoint_sha256"]}\nonnxruntime vs PyTorch on '
        f'{result["checked_on"]}: max abs diff {parity["max_abs_diff"]:.3g} '
        f'(atol {parity["atol"]:g}), same top-5 {parity["top5_equal"]}, '
        f'same kept tokens {parity["kept_equal"]}; ExportedProgram vs eager '
        f'{parity["program_max_abs_diff"]:.3g}', logger='current')
    if not parity['ok']:
        failed = [f'max abs diff {parity["max_abs_diff"]:.3g} > --atol '
                  f'{parity["atol"]:g}'] * (
                      not parity['max_abs_diff'] <= parity['atol'])
        failed += ['another top-5'] * (not parity['top5_equal'])
        failed += ['other kept tokens'] * (parity['kept_equal'] is False)
        raise ParityError(f'{result["path"]} disagrees with PyTorch: '
                          f'{", ".join(failed)}.')
    return result


if __name__ == '__main__':
    run_cli(main)
