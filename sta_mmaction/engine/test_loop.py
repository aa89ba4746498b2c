"""STATestLoop: mmengine's TestLoop under bf16/fp16 autocast, or compiled.

mmengine 0.10.7 offers neither for testing: ``TestLoop(fp16=True)``
autocasts to the device's default dtype (bf16 on CPU, whatever the name
says), and ``cfg.compile`` applies in ``Runner.train`` only::

    test_cfg = dict(type='STATestLoop', amp='bf16', compile=True)

The scores leave the model in the autocast dtype, which ``AccMetric`` cannot
take (numpy has no bfloat16), so every floating field of the predictions is
made float32 before any metric or hook sees it.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmaction.registry import LOOPS
from mmengine.runner import TestLoop, autocast
from mmengine.runner.loops import _update_losses
from torch.utils.data import DataLoader

from ..models import unwrap
from .provenance import PREFIX

#: ``amp`` names and their autocast dtypes.
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_amp(amp: Optional[str], device_type: str,
              fp16: bool = False) -> None:
    """Raise a ``ValueError`` for an ``amp`` the device cannot run.

    Args:
        amp (str, optional): ``'bf16'``, ``'fp16'`` or None (float32).
        device_type (str): Where the model runs, ``'cpu'`` or ``'cuda'``.
        fp16 (bool): mmengine's ``test_cfg.fp16``, which autocasts to the
            device's default dtype: float16 on CUDA, bfloat16 on the CPU.
            Defaults to False.
    """
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f'amp={amp!r} is not a mixed precision; choose '
                         f'one of {tuple(AMP_DTYPES)} or None (float32).')
    if amp == 'fp16' and device_type != 'cuda':
        raise ValueError(
            f"amp='fp16' needs CUDA, but the model runs on {device_type}; "
            "use amp='bf16' (--amp bf16) there.")
    if fp16 and device_type != 'cuda':
        raise ValueError(
            f'test_cfg.fp16=True on {device_type}: mmengine then autocasts '
            'to bfloat16, not float16; drop it and pass --amp bf16 '
            "(test_cfg=dict(type='STATestLoop', amp='bf16')) to say so.")


def float32_scores(samples: Sequence) -> Sequence:
    """Make every floating field of ``test_step``'s outputs float32.

    ``samples`` are changed in place and returned.
    """
    for sample in samples:
        for key in sample.keys():
            value = sample.get(key)
            if (isinstance(value, torch.Tensor) and value.is_floating_point()
                    and value.dtype != torch.float32):
                sample.set_field(value.float(), key)
    return samples


@LOOPS.register_module()
class STATestLoop(TestLoop):
    """``TestLoop`` with a named autocast dtype and a compiled backbone.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader or dict): The test dataloader.
        evaluator (Evaluator or dict or list): The test metrics.
        fp16 (bool): mmengine's own switch (autocast to the device's default
            dtype). Defaults to False; it cannot be combined with ``amp``.
        amp (str, optional): ``'bf16'`` (CPU and CUDA) or ``'fp16'`` (CUDA
            only): ``test_step`` runs under ``torch.autocast`` with that
            dtype. Defaults to None, float32.
        compile (bool or dict): ``torch.compile`` the backbone (with these
            options when a dict) after the first ``before_test_iter`` hooks,
            so pruning hooks have converted it. Defaults to False.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Dict, List], fp16: bool = False,
                 amp: Optional[str] = None,
                 compile: Union[bool, Dict] = False) -> None:
        device_type = next(unwrap(runner.model).parameters()).device.type
        check_amp(amp, device_type, fp16)
        if fp16 and amp is not None:
            raise ValueError(
                f'test_cfg sets fp16=True and amp={amp!r}; fp16=True '
                'autocasts to the device default dtype, amp names one. Set '
                'only amp.')
        if not isinstance(compile, (bool, dict)):
            raise ValueError(f'test_cfg.compile={compile!r} must be a bool '
                             'or a dict of torch.compile options.')
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        self.amp = amp
        self.compile = compile
        self.device_type = device_type

    def run(self) -> dict:
        hub = self.runner.message_hub
        hub.update_info(PREFIX + 'compile', bool(self.compile))
        self._compiled = not self.compile
        return super().run()

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        """``TestLoop.run_iter`` of mmengine 0.10.7 with the changes fenced.

        The named autocast is inside the stock one, so the inner one wins.
        """
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        # --- STA: compile once, autocast to the named dtype, float32 out ---
        if not self._compiled:
            options = {} if self.compile is True else dict(self.compile)
            unwrap(self.runner.model).backbone.compile(**options)
            self._compiled = True
        with autocast(enabled=self.fp16), torch.autocast(
                device_type=self.device_type,
                dtype=AMP_DTYPES.get(self.amp, torch.float32),
                enabled=self.amp is not None):
            outputs = self.runner.model.test_step(data_batch)
        outputs = float32_scores(outputs)
        # --- end STA ---
        outputs, self.test_loss = _update_losses(outputs, self.test_loss)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=outputs)
