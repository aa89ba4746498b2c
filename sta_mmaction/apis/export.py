"""``tools/deployment/export_onnx.py``: a config's recognizer to ONNX, checked.

The recognizer is built as ``tools/test.py`` builds it
(:func:`build_recognizer`: the checked loading, the pruning of an STA
backbone or an ``STAPruningHook``); its backbone and head become one graph
(:mod:`sta_mmaction.deployment`) at the config's test view with a dynamic
batch, and the file is run in onnxruntime against PyTorch on other views.
"""
import copy
import json
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
from mmengine.config import Config

from ..analysis import view_shape
from ..deployment import (ATOL, CPU_PROVIDER, RecognizerGraph, check_parity,
                          example_inputs, export_onnx, export_program,
                          onnx_session, require)
from ..models import pruning_of
from ..utils import file_sha256, local_checkpoint_file
from ..version import __version__
from .demo import build_recognizer
from .testing import use_fused_attention


def export_config(cfg: Config, out: str, checkpoint: Optional[str] = None, *,
                  random_weights: bool = False, fused_attention: bool = False,
                  program: Optional[str] = None, video: Optional[str] = None,
                  shape: Optional[Sequence[int]] = None,
                  batch: int = 2, verify_batch: int = 3,
                  dynamic_batch: bool = True,
                  opset: Optional[int] = None, atol: float = ATOL,
                  provider: str = CPU_PROVIDER, seed: int = 0) -> Dict:
    """Export ``cfg``'s recognizer to ``out`` and check it in onnxruntime.

    Args:
        cfg (Config): A test config (copied).
        out (str): The ``.onnx`` file.
        checkpoint (str, optional): File or URL. Defaults to None, the
            config's ``load_from``.
        random_weights (bool): Export without a checkpoint (MMAction2's init
            under ``seed``). Defaults to False.
        fused_attention (bool): As ``tools/test.py --fused-attention``.
            Defaults to False.
        program (str, optional): Also save the ``ExportedProgram`` here
            (``torch.export.save``, ``.pt2``). Defaults to None.
        video (str, optional): Check on a view of this video (the config's
            pipeline, one clip, centre crop) beside synthetic ones. Defaults
            to None, synthetic views only.
        shape (Sequence[int], optional): The view's (C, T, H, W). Defaults
            to None, the test pipeline's (:func:`view_shape`).
        batch (int): Views of the traced example (>= 2). Defaults to 2.
        verify_batch (int): Views of the check (another batch size than the
            traced one shows the batch is dynamic). Defaults to 3.
        dynamic_batch (bool): A file for any batch size; False: for
            ``batch`` views only (then also checked on ``batch``). Defaults
            to True.
        opset (int, optional): ONNX opset. Defaults to None, torch's.
        atol (float): Largest |ONNX - PyTorch| score. Defaults to
            :data:`~sta_mmaction.deployment.ATOL`.
        provider (str): onnxruntime provider of the check. Defaults to CPU.
        seed (int): Seed of random weights, views and draws. Defaults to 0.

    Returns:
        dict: ``path``, ``opset``, ``inputs``, ``outputs``, ``size_mb``,
        ``metadata`` and ``parity`` (:func:`check_parity`, plus
        ``program_max_abs_diff``: the ``ExportedProgram`` against eager).
    """
    cfg = copy.deepcopy(cfg)
    source = checkpoint or cfg.get('load_from')
    if bool(source) == random_weights:
        raise ValueError(
            f'checkpoint={source!r} with random_weights={random_weights}: '
            'export a checkpoint (python tools/deployment/export_onnx.py '
            'CONFIG CHECKPOINT) or, to try the graph only, --random-weights '
            'without one.')
    if video and not osp.isfile(video):
        raise FileNotFoundError(f'--video {video} does not exist.')
    if fused_attention:
        use_fused_attention(cfg)
    model = build_recognizer(cfg, source, seed)
    graph = RecognizerGraph(model.backbone,
                            model.neck if model.with_neck else None,
                            model.cls_head).eval()
    shape = tuple(shape or view_shape(cfg)[1:])  # (C, T, H, W)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f'shape={shape} must be a view (C, T, H, W) of '
                         'sizes >= 1.')
    require('onnx', 'onnxscript', 'onnxruntime')
    gen = torch.Generator().manual_seed(seed)
    example = example_inputs(graph, torch.randn((batch, ) + shape,
                                                generator=gen), seed)
    exported = export_program(graph, example, dynamic_batch)
    verify_batch = verify_batch if dynamic_batch else batch
    pruning = pruning_of(cfg)
    backbone = model.backbone
    local = local_checkpoint_file(source) if source else None
    preprocess = cfg.model.get('data_preprocessor') or {}
    metadata = {
        'sta.drop_number': getattr(backbone, 'drop_number', 'none'),
        'sta.strategy': getattr(backbone, 'strategy', 'none'),
        'sta.seed': getattr(backbone, 'seed', None),
        'sta.fused_attention': getattr(backbone, 'fused_attention', False),
        'sta.pruned_by': 'STAPruningHook' if pruning.hook else 'backbone',
        'backbone': type(backbone).__name__,
        'view_shape': json.dumps(shape),
        'batch': 'dynamic' if dynamic_batch else batch,
        'input_mean': json.dumps(preprocess.get('mean')),
        'input_std': json.dumps(preprocess.get('std')),
        'checkpoint': source or f'none: random weights (seed {seed})',
        'checkpoint_sha256': file_sha256(local) if local else
        'unknown: not a local file' if source else 'none',
        'config': osp.basename(cfg.filename or ''),
        'torch': torch.__version__, 'sta_mmaction': __version__,
    }
    facts = export_onnx(exported, out, graph, metadata, opset)
    if program:
        torch.export.save(exported, program)
    views = torch.randn((verify_batch, ) + shape, generator=gen)
    if video:
        from ..visualization.kept_tokens import backbone_input, load_view
        views[0] = backbone_input(model, load_view(cfg, video)[1])[0]
    inputs = example_inputs(graph, views, seed)
    parity = check_parity(graph, onnx_session(out, provider=provider),
                          inputs, atol)
    with torch.no_grad():
        parity['program_max_abs_diff'] = float(
            (exported.module()(*inputs)[0] - graph(*inputs)[0]).abs().max())
    return dict(facts, size_mb=osp.getsize(out) / 2**20, metadata=metadata,
                parity=parity, program=program,
                checked_on=f'{verify_batch} views' + (
                    f' (the first from {video})' if video else
                    ' (synthetic)'))
