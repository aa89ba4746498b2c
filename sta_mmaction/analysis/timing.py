"""Wall-clock timing of forwards, interleaved across models.

After warm-up, repetitions are interleaved across the models (m0, m1, ...,
m0, m1, ...) so that drift of the machine (clock, thermals, other load) falls
on all of them alike; the device is synchronised around every clock reading.
"""
import platform
import statistics
import time
from typing import Dict, List, Mapping, Optional

import torch
from mmengine.utils import ProgressBar
from torch import nn

#: ``--amp`` names -> autocast dtypes.
AMP_DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: Optional[str] = None):
    """Autocast context for ``amp`` (``'fp16'``, ``'bf16'`` or None)."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f'amp={amp!r} is not supported; choose one of '
                         f'{sorted(AMP_DTYPES)} or None (full precision).')
    dtype = AMP_DTYPES.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def time_once(model: nn.Module,
              clip: torch.Tensor,
              amp: Optional[str] = None) -> float:
    """Seconds of one forward, the device synchronised around the clock."""
    sync(clip.device)
    start = time.perf_counter()
    with torch.no_grad(), autocast(clip.device, amp):
        model(clip)
    sync(clip.device)
    return time.perf_counter() - start


def interleaved_times(models: Mapping[str, nn.Module],
                      clip: torch.Tensor,
                      warmup: int = 1,
                      repeats: int = 5,
                      amp: Optional[str] = None,
                      progress: bool = True) -> Dict[str, List[float]]:
    """Forward seconds of each model, repetitions interleaved.

    Args:
        models (Mapping[str, nn.Module]): Label -> model, in eval mode, on
            ``clip``'s device.
        clip (Tensor): The input of every forward.
        warmup (int): Discarded runs of each model. Defaults to 1.
        repeats (int): Timed runs of each model. Defaults to 5.
        amp (str, optional): ``'fp16'`` or ``'bf16'`` autocast. Defaults to
            None.
        progress (bool): Show an mmengine progress bar. Defaults to True.

    Returns:
        dict: Label -> list of ``repeats`` seconds.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f'repeats={repeats} must be >= 1 and warmup='
                         f'{warmup} >= 0.')
    for _ in range(warmup):
        for model in models.values():
            time_once(model, clip, amp)
    times: Dict[str, List[float]] = {label: [] for label in models}
    bar = ProgressBar(repeats * len(models)) if progress else None
    for _ in range(repeats):
        for label, model in models.items():
            times[label].append(time_once(model, clip, amp))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
    return times


def median(times: List[float]) -> float:
    """Median of a list of seconds."""
    return statistics.median(times)


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return f'{platform.processor() or platform.machine()} CPU'


def hardware_name(device: torch.device) -> str:
    """What the numbers were measured on, to print beside them."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{cpu_name()}, {torch.get_num_threads()} threads'


def setup_cpu(threads: Optional[int] = None,
              flush_denormal: bool = False) -> None:
    """Set torch's CPU threads and, if asked, flush subnormal floats.

    Args:
        threads (int, optional): ``torch.set_num_threads``. Defaults to
            None, torch's default.
        flush_denormal (bool): Treat subnormal floats as zero, which x86
            CPUs otherwise multiply several times slower. Defaults to False.
    """
    if threads:
        torch.set_num_threads(threads)
    if flush_denormal and not torch.set_flush_denormal(True):
        raise ValueError('flush_denormal=True: this CPU cannot flush '
                         'subnormal floats (torch.set_flush_denormal '
                         'returned False).')
