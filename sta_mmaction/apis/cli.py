"""How every tool ends: a bad input or setting is one line, not a traceback."""
import os.path as osp
import sys
from typing import Any, Callable

from ..datasets import CorruptVideoError
from ..utils import UnsafeCheckpointError

#: Errors whose message describes a bad input or setting completely (our
#: ``ValueError``s name the setting, the value and what to do).
USER_ERRORS = (ValueError, FileNotFoundError, CorruptVideoError,
               UnsafeCheckpointError)


def run_cli(main: Callable[[], Any]) -> Any:
    """Call a tool's ``main``; print a :data:`USER_ERRORS` as one line.

    It exits 1 with ``<tool>: error: <message>``; others keep a traceback.
    """
    try:
        return main()
    except USER_ERRORS as err:
        tool = osp.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
        message = str(err)
        if isinstance(err, FileNotFoundError) and err.filename:
            message = f'no such file: {osp.abspath(err.filename)}'
        sys.exit(f'{tool}: error: {message}')
