"""Timing of forwards, interleaved across models, and of their parts.

After warm-up, repetitions are interleaved across the models (m0, m1, ...,
m0, m1, ...; with ``alternate`` the order reverses every repetition) so that
drift of the machine (clock, thermals, other load) falls on all of them
alike; the device is synchronised around every clock reading. Beside the
wall clock the process CPU time is read: on a shared machine it leaves out
the time the process waited for a core, so it is the steadier of the two
there (with one thread it is the forward's own compute time).
"""
import functools
import platform
import statistics
import time
from types import ModuleType
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, \
    Tuple

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


#: A model to time: a module or any callable of the clip.
Forward = Callable[[torch.Tensor], object]


def with_autocast(forward: Forward,
                  device: torch.device,
                  amp: Optional[str] = None) -> Forward:
    """``forward`` under its own ``amp`` autocast, as a callable of the clip.

    Lets variants of different precisions be timed side by side in one
    :func:`interleaved_times` call. ``amp=None`` returns ``forward`` itself.
    """
    if amp is None:
        return forward
    autocast(device, amp)  # a bad name fails here, not mid-benchmark

    @functools.wraps(forward)
    def run(clip):
        with autocast(device, amp):
            return forward(clip)

    return run


class Times(NamedTuple):
    """Seconds of every timed forward, by label."""
    wall: Dict[str, List[float]]
    cpu: Dict[str, List[float]]


def time_once(model: Forward,
              clip: torch.Tensor,
              amp: Optional[str] = None) -> Tuple[float, float]:
    """Wall-clock and process CPU seconds of one forward.

    The device is synchronised around the clock readings.
    """
    sync(clip.device)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad(), autocast(clip.device, amp):
        model(clip)
    sync(clip.device)
    return time.perf_counter() - start, time.process_time() - cpu


def interleaved_times(models: Mapping[str, Forward],
                      clip: torch.Tensor,
                      warmup: int = 1,
                      repeats: int = 5,
                      amp: Optional[str] = None,
                      progress: bool = True,
                      alternate: bool = False) -> Times:
    """Forward seconds of each model, repetitions interleaved.

    Args:
        models (Mapping[str, Callable]): Label -> model (in eval mode, on
            ``clip``'s device) or callable of the clip.
        clip (Tensor): The input of every forward.
        warmup (int): Discarded runs of each model. Defaults to 1.
        repeats (int): Timed runs of each model. Defaults to 5.
        amp (str, optional): ``'fp16'`` or ``'bf16'`` autocast. Defaults to
            None.
        progress (bool): Show an mmengine progress bar. Defaults to True.
        alternate (bool): Reverse the order of the models every other
            repetition, so that none always runs right after another.
            Defaults to False.

    Returns:
        Times: Label -> list of ``repeats`` seconds, wall clock and CPU.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f'repeats={repeats} must be >= 1 and warmup='
                         f'{warmup} >= 0.')
    for _ in range(warmup):
        for model in models.values():
            time_once(model, clip, amp)
    times = Times({label: [] for label in models},
                  {label: [] for label in models})
    labels = list(models)
    bar = ProgressBar(repeats * len(models)) if progress else None
    for rep in range(repeats):
        for label in (labels[::-1] if alternate and rep % 2 else labels):
            wall, cpu = time_once(models[label], clip, amp)
            times.wall[label].append(wall)
            times.cpu[label].append(cpu)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
    return times


class PartTimer:
    """Seconds spent inside modules, by forward pre- and post-hooks.

    On the CPU every op is synchronous, so the clock read in the hooks
    brackets the module's work. Nested modules are timed separately. Use it
    as a context manager: the hooks are removed on exit.

    Args:
        modules (dict[str, nn.Module]): Name -> module to time.
        clock (Callable[[], float]): The clock read. Defaults to
            ``time.perf_counter``; ``time.process_time`` leaves out the time
            a one-thread process waited for a core.
    """

    def __init__(self,
                 modules: Dict[str, nn.Module],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = {name: 0. for name in modules}
        self._start: Dict[str, float] = {}
        self._clock = clock
        self._handles = []
        for name, module in modules.items():
            self._handles.append(
                module.register_forward_pre_hook(self._enter(name)))
            self._handles.append(module.register_forward_hook(
                self._leave(name)))

    def _enter(self, name):

        def hook(module, args):
            self._start[name] = self._clock()

        return hook

    def _leave(self, name):

        def hook(module, args, output):
            self.seconds[name] += self._clock() - self._start[name]

        return hook

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()

    def __enter__(self) -> 'PartTimer':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class CallTimer:
    """Seconds spent inside a module-level function, by its first argument.

    For code paths that call functions rather than modules (which
    :class:`PartTimer` cannot hook): ``namespace.name`` is replaced by a
    timed wrapper inside the context and restored on exit. Callers must look
    the function up in ``namespace`` at call time (a plain global call in
    that module does). CPU only, like :class:`PartTimer`.

    Args:
        namespace (module): The module whose global the callers read.
        name (str): The function's name there.
        labels (dict[int, str]): ``id`` of the first argument -> label;
            calls on any other first argument are not timed.
        clock (Callable[[], float]): The clock read, as for
            :class:`PartTimer`. Defaults to ``time.perf_counter``.
    """

    def __init__(self,
                 namespace: ModuleType,
                 name: str,
                 labels: Dict[int, str],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = {label: 0. for label in labels.values()}
        self._namespace, self._name = namespace, name
        self._original = getattr(namespace, name)
        original = self._original

        @functools.wraps(original)
        def timed(first, *args, **kwargs):
            label = labels.get(id(first))
            if label is None:
                return original(first, *args, **kwargs)
            start = clock()
            out = original(first, *args, **kwargs)
            self.seconds[label] += clock() - start
            return out

        setattr(namespace, name, timed)

    def remove(self) -> None:
        """Put the original function back."""
        setattr(self._namespace, self._name, self._original)

    def __enter__(self) -> 'CallTimer':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


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
