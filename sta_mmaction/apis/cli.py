"""How every tool ends: a bad input or setting is one line, not a traceback."""
import contextlib
import os
import os.path as osp
import sys
import tempfile
from typing import Any, Callable, Iterator, Optional, Tuple

from ..datasets import CorruptVideoError
from ..engine import NonFiniteLossError
from ..engine.run_logging import quiet_repeated_warnings
from ..utils import UnsafeCheckpointError

#: Errors whose message describes a bad input or setting completely (our
#: ``ValueError``s name the setting, the value and what to do).
USER_ERRORS = (ValueError, FileNotFoundError, CorruptVideoError,
               UnsafeCheckpointError, NonFiniteLossError)


def run_cli(main: Callable[[], Any]) -> Any:
    """Call a tool's ``main``; print a :data:`USER_ERRORS` as one line.

    It exits 1 with ``<tool>: error: <message>``; others keep a traceback.
    Known deprecation warnings show once in the process.
    """
    from mmengine.logging import MMLogger
    quiet_repeated_warnings(MMLogger.get_current_instance())
    try:
        return main()
    except USER_ERRORS as err:
        tool = osp.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
        message = str(err)
        if isinstance(err, FileNotFoundError) and err.filename:
            message = f'no such file: {osp.abspath(err.filename)}'
        sys.exit(f'{tool}: error: {message}')


def check_output_dir(path: str, option: str) -> None:
    """``ValueError`` if ``path``, a folder to write into, is a file."""
    if osp.isfile(path):
        raise ValueError(f'{option}={path} is a file; give a folder (it is '
                         'created if missing).')


def check_output_file(path: str, option: str,
                      source: Optional[str] = None) -> None:
    """``ValueError`` if ``path``, a file to write, is a folder or the same
    file as ``source`` (which writing would destroy)."""
    if osp.isdir(path):
        raise ValueError(f'{option}={path} is a folder; give a file name.')
    if source is not None and osp.exists(path) and osp.samefile(path, source):
        raise ValueError(f'{option}={path} is the source file itself; '
                         'writing it would destroy the source. Give another '
                         'file name.')


#: Lines torch's profiler (kineto) writes to stderr at every start and stop,
#: whatever ``KINETO_LOG_LEVEL`` says.
PROFILER_LINES = (b'USDT:', )


@contextlib.contextmanager
def stderr_without(prefixes: Tuple[bytes, ...] = PROFILER_LINES
                   ) -> Iterator[None]:
    """Drop the lines starting with ``prefixes`` that the block writes to
    this process's stderr (file descriptor 2, so native code's too); the
    other lines are written after the block, in their order."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught:
                if not line.startswith(prefixes):
                    os.write(2, line)
