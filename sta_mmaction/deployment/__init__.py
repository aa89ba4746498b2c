"""A pruned model outside PyTorch: torch.export, ONNX and onnxruntime.

On ``models`` (below ``analysis``, whose speed tool times onnxruntime).
"""
from .onnx import (ATOL, CPU_PROVIDER, ExportError, ParityError,
                   RecognizerGraph, check_exportable, check_parity,
                   example_inputs, export_onnx, export_program, onnx_session,
                   random_draws, require, run_session)

__all__ = [
    'ATOL', 'CPU_PROVIDER', 'ExportError', 'ParityError', 'RecognizerGraph',
    'check_exportable', 'check_parity', 'example_inputs', 'export_onnx',
    'export_program', 'onnx_session', 'random_draws', 'require', 'run_session'
]
