"""A pruned backbone (and head) as one graph: torch.export, ONNX, onnxruntime.

The graph is traced by ``torch.export`` with a dynamic batch (the
``ExportedProgram``: the route to other runtimes), converted by
``torch.onnx.export`` and checked in onnxruntime against PyTorch: the class
scores (max abs difference, top-5) and, where the backbone prunes, the kept
positions of every prune point, which the graph outputs beside the scores.
``onnx``, ``onnxscript`` and ``onnxruntime`` are the ``deploy`` extra.
"""
import importlib
import traceback
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..core import NUM_PRUNE_POINTS, group_schedule
from ..models import STASwin3D, STAViT
from ..models.strategy import sample_generators

#: onnxruntime's provider when none is named.
CPU_PROVIDER = 'CPUExecutionProvider'
#: Default largest |ONNX - PyTorch| of the class scores.
ATOL = 1e-4


class ExportError(ValueError):
    """A model, setting or environment that cannot export; says why."""


class ParityError(ValueError):
    """The exported file disagrees with PyTorch beyond the tolerance."""


def require(*names: str) -> None:
    """Import the ``deploy`` extra's packages, or an :class:`ExportError`."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ExportError(
                f'{name} is not installed ({err}); install the deploy extra: '
                'pip install -e .[deploy] (pins in requirements/deploy.txt).'
            ) from err


def prunes(backbone: nn.Module) -> bool:
    """Whether ``backbone`` is an STA backbone that drops tokens."""
    return isinstance(backbone, (STAViT, STASwin3D)) and bool(
        backbone.drop_number)


def check_exportable(backbone: nn.Module) -> None:
    """An :class:`ExportError` for a backbone whose graph cannot export."""
    if getattr(backbone, 'rlt_threshold', None) is not None:
        raise ExportError(
            f'rlt_threshold={backbone.rlt_threshold}: each clip keeps as many '
            'tokens as it has changing patches, a shape that depends on the '
            'data, which neither torch.export nor an ONNX graph of fixed '
            'token counts can hold; export a fixed budget (drop_number=r, '
            "strategy='rlt') instead.")
    if (isinstance(backbone, STASwin3D) and prunes(backbone)
            and backbone.strategy == 'random'):
        raise ExportError(
            "strategy='random' on STASwin3D draws from generators seeded by "
            'a hash of each clip, which a graph cannot compute, and only '
            "STAViT takes the draws as inputs; export another strategy.")


class RecognizerGraph(nn.Module):
    """(B, C, T, H, W) normalised views [, draws] -> scores, kept positions.

    The outputs: the head's (B, K) class scores (the backbone's features
    without a head), then, for a backbone that prunes, the (B, M) kept
    positions of each prune point (``forward_pruned``). The ``'random'``
    strategy's (B, G, n) uniform draws per prune point are inputs (a graph
    cannot hash the clip to seed a generator): :func:`random_draws`.

    Args:
        backbone (nn.Module): Built, weights loaded, pruned as it runs.
        neck (nn.Module, optional): Defaults to None.
        head (nn.Module, optional): The classification head. Defaults to None.
    """

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module] = None,
                 head: Optional[nn.Module] = None) -> None:
        super().__init__()
        check_exportable(backbone)
        self.backbone, self.neck, self.head = backbone, neck, head
        self.prunes = prunes(backbone)
        self.num_draws = NUM_PRUNE_POINTS if (
            isinstance(backbone, STAViT) and self.prunes
            and backbone.strategy == 'random') else 0

    def forward(self, clip: Tensor, *draws: Tensor) -> Tuple[Tensor, ...]:
        kept: List[Tensor] = []
        if self.prunes:
            feats, kept = self.backbone.forward_pruned(
                clip, draws) if draws else self.backbone.forward_pruned(clip)
        else:
            feats = self.backbone(clip)
        if self.neck is not None:
            feats, _ = self.neck(feats)
        scores = feats if self.head is None else self.head(feats)  # (B, K)
        return (scores, *kept)

    def input_names(self) -> List[str]:
        return ['clip'] + [f'draws{p}' for p in range(self.num_draws)]

    def output_names(self) -> List[str]:
        points = NUM_PRUNE_POINTS if self.prunes else 0
        return ['scores'] + [f'kept{p}' for p in range(points)]


def random_draws(backbone: STAViT, clip: Tensor,
                 seed: Optional[int] = 0) -> List[Tensor]:
    """(B, G, n) uniform draws per prune point of a ``'random'`` STAViT.

    With the backbone's ``seed``, those its ``forward_pruned(clip)`` makes
    (one generator per clip, :func:`sample_generators`); without one, from
    a generator seeded with ``seed``.
    """
    counts = backbone.token_counts(clip.shape)
    groups = group_schedule(backbone.num_frames // backbone.tubelet_size)
    gens = sample_generators('random', backbone.seed, clip) or [
        torch.Generator().manual_seed(seed)] * clip.shape[0]
    per_clip = [[torch.rand(g, n // g, generator=gen)
                 for g, n in zip(groups, counts)] for gen in gens]
    return [torch.stack(d) for d in zip(*per_clip)]  # (B, G, n) each


def example_inputs(graph: RecognizerGraph, clip: Tensor,
                   seed: int = 0) -> Tuple[Tensor, ...]:
    """``clip`` and, for a ``'random'`` graph, its draws."""
    if not graph.num_draws:
        return (clip, )
    return (clip, *random_draws(graph.backbone, clip, seed))


def export_program(graph: RecognizerGraph, inputs: Sequence[Tensor],
                   dynamic_batch: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of ``graph`` (not strict) on ``inputs``.

    Args:
        graph (RecognizerGraph): The graph.
        inputs (Sequence[Tensor]): :func:`example_inputs`.
        dynamic_batch (bool): Any batch size; else only ``inputs``'.
            Defaults to True.
    """
    dims = None
    if dynamic_batch:
        if inputs[0].shape[0] < 2:
            raise ValueError('export with a batch of at least 2: '
                             'torch.export specialises a dimension of size '
                             '1.')
        batch = torch.export.Dim('batch')
        # by the signature (clip, *draws): the draws are one argument
        dims = ({0: batch}, ) + ((tuple({0: batch} for _ in inputs[1:]), )
                                 if len(inputs) > 1 else ())
    try:
        return torch.export.export(graph.eval(), tuple(inputs),
                                   dynamic_shapes=dims, strict=False)
    except ValueError:
        raise  # the model's own check of the view, r or settings
    except Exception as err:  # noqa: B902  (torch.export raises many kinds)
        batch_fixed = any(m in str(err) for m in (
            'specialized it to be a constant', 'Constraints violated',
            'non-nested SymInt'))
        hint = ('; the code fixes the batch size (e.g. a table cached per '
                'batch): export with --static-batch, a file for that batch '
                'only' if batch_fixed else '')
        raise ExportError(
            f'torch.export cannot trace the {type(graph.backbone).__name__} '
            f'graph: {type(err).__name__}: {str(err).splitlines()[0]}'
            f'{_failing_line(err)}{hint}') from err
    finally:
        _clear_mask_caches()


def _failing_line(err: BaseException) -> str:
    """`` (at file:line in function)``: the innermost model line
    (sta_mmaction or mmaction) that ``err`` or an exception it chains ran
    through; '' if none."""
    where = ''
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        for frame in traceback.extract_tb(err.__traceback__):
            name = frame.filename
            cut = max(name.rfind('/sta_mmaction/'), name.rfind('/mmaction/'))
            if cut >= 0 and '/deployment/' not in name:
                where = (f' (at {name[cut + 1:]}:{frame.lineno} in '
                         f'{frame.name})')
        err = err.__cause__ or err.__context__
    return where


def _clear_mask_caches() -> None:
    """Empty Video Swin's ``lru_cache``-d masks and window tables: tracing
    filled them with fake tensors, which eager forwards would read."""
    from mmaction.models.backbones import swin

    from ..models import swin_layers
    for module in (swin, swin_layers):
        for value in vars(module).values():
            if callable(getattr(value, 'cache_clear', None)):
                value.cache_clear()


def _stable_sort():
    """``aten.sort.stable`` as ONNX ``TopK`` (torchlib maps only the
    default overload): ``TopK`` breaks ties by the lower index, so it is the
    stable sort that STA's ``argsort(stable=True)`` asks for."""
    from onnxscript.function_libs.torch_lib.ops.core import aten_sort
    return {torch.ops.aten.sort.stable: aten_sort}


def export_onnx(program: torch.export.ExportedProgram, path: str,
                graph: RecognizerGraph, metadata: Mapping[str, str],
                opset: Optional[int] = None) -> Dict:
    """Write ``program`` to ``path`` as ONNX with ``metadata``; its facts.

    Args:
        program (ExportedProgram): :func:`export_program` of ``graph``.
        path (str): The ``.onnx`` file (weights over 2 GB go beside it).
        graph (RecognizerGraph): For the input and output names.
        metadata (Mapping[str, str]): Written into the file.
        opset (int, optional): ONNX opset. Defaults to None, torch's.

    Returns:
        dict: ``path``, ``opset``, ``inputs``, ``outputs``.
    """
    require('onnx', 'onnxscript')
    try:
        onnx_program = torch.onnx.export(
            program, dynamo=True, opset_version=opset, verbose=False,
            input_names=graph.input_names(),
            output_names=graph.output_names(),
            custom_translation_table=_stable_sort())
    except Exception as err:  # noqa: B902
        # torch 2.13's SDPA decomposition for ONNX lays its output out
        # unlike the eager kernel, so a later view of it fails (Video Swin)
        hint = ('; the explicit attention exports the same model: drop '
                '--fused-attention' if getattr(graph.backbone,
                                               'fused_attention', False)
                else '')
        raise ExportError(
            f'torch.onnx cannot convert the {type(graph.backbone).__name__} '
            f'graph: {type(err).__name__}: '
            f'{_first_reason(str(err))}{hint}') from err
    written = onnx_program.model.opset_imports.get('')
    if opset is not None and written != opset:
        raise ExportError(
            f'opset={opset}: torch {torch.__version__}\'s exporter wrote '
            f'opset {written} (it translates at 18 and up, and converting '
            'this graph down failed); use an opset >= 18.')
    onnx_program.model.metadata_props.update(
        {k: str(v) for k, v in metadata.items()})
    onnx_program.save(path)
    return dict(path=path, opset=written, inputs=graph.input_names(),
                outputs=graph.output_names())


def _first_reason(message: str) -> str:
    """The line of torch.onnx's report that names the failing op."""
    lines = [line for line in message.splitlines() if line.strip()]
    return next((line for line in lines if 'Error' in line and '<class' in
                 line), lines[0] if lines else message)


def onnx_session(path: str, threads: Optional[int] = None,
                 provider: str = CPU_PROVIDER):
    """An onnxruntime session of ``path`` on ``provider``.

    Args:
        path (str): The ``.onnx`` file.
        threads (int, optional): Intra-op threads. Defaults to None, torch's
            ``get_num_threads()`` (the same as PyTorch's timings).
        provider (str): onnxruntime execution provider. Defaults to
            :data:`CPU_PROVIDER`.
    """
    require('onnxruntime')
    import onnxruntime as ort
    available = ort.get_available_providers()
    if provider not in available:
        raise ExportError(f'provider={provider!r} is not available in this '
                          f'onnxruntime; choose one of {available}.')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=[provider])


def run_session(session, inputs: Sequence[Tensor]) -> List[np.ndarray]:
    """The session's outputs on ``inputs`` (fed in the graph's order)."""
    return session.run(None, {
        i.name: t.detach().cpu().numpy()
        for i, t in zip(session.get_inputs(), inputs)})


def check_parity(graph: nn.Module, session, inputs: Sequence[Tensor],
                 atol: float = ATOL) -> Dict:
    """Compare the session with ``graph`` in PyTorch on ``inputs``.

    Returns:
        dict: ``max_abs_diff`` of the scores, ``top5_equal`` (the same
        top-5 classes in order, per view), ``kept_equal`` (the same kept
        positions at every prune point; None when nothing prunes), ``ok``.
    """
    with torch.no_grad():
        want = graph(*inputs)
    got = run_session(session, inputs)
    scores = torch.from_numpy(got[0])
    k = min(5, scores.shape[-1])
    diff = float((scores - want[0]).abs().max())
    top5 = bool(torch.equal(scores.topk(k).indices, want[0].topk(k).indices))
    kept = None if len(want) == 1 else all(
        np.array_equal(g, w.numpy()) for g, w in zip(got[1:], want[1:]))
    return dict(max_abs_diff=diff, top5_equal=top5, kept_equal=kept,
                ok=diff <= atol and top5 and kept is not False, atol=atol)
