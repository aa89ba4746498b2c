"""Logging of a run: one metrics JSON, a brief console, a complete log file.

mmengine's Runner logs its environment, its config and the hook order at
INFO, about 270 lines before the first result. :class:`BriefConsoleRunner`
keeps them in the log file and off the console unless the config sets
``verbose = True`` (``--verbose``); each known deprecation warning is shown
once per process (:data:`REPEATED_WARNINGS`).
"""
import contextlib
import io
import logging
import os.path as osp

from mmaction.registry import HOOKS, RUNNERS
from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook
from mmengine.logging import print_log
from mmengine.runner import Runner
from torch.utils.data import get_worker_info


@HOOKS.register_module()
class MainRankJsonLoggerHook(LoggerHook):
    """``LoggerHook`` whose test metrics JSON is written by rank 0 only.

    mmengine 0.10.7 dumps it on every rank to the same file, where the ranks
    overwrite one another or interleave into invalid JSON.
    """

    def after_test_epoch(self, runner, metrics=None) -> None:
        if is_main_process():
            return super().after_test_epoch(runner, metrics)
        _, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)

    def after_test(self, runner) -> None:
        # after ProvenanceHook's result lines (NORMAL): the run's last line
        if is_main_process():
            print_log('Metrics JSON: ' + osp.abspath(osp.join(
                runner.log_dir, self.json_log_path)), logger='current')


class PrefixFilter(logging.Filter):
    """Drop log messages that start with one of ``prefixes``.

    Args:
        prefixes (tuple[str]): Starts of the messages to drop.
    """

    def __init__(self, prefixes) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


class OnceFilter(logging.Filter):
    """Let a log message that starts with one of ``prefixes`` through once.

    MMAction2's decoders build a deprecated ``FileClient`` per video, each
    logging the same warning. Dataloader workers hold their own copy of the
    filter, so they drop such messages: the main process shows them.

    Args:
        prefixes (tuple[str]): Starts of the messages to show only once.
    """

    def __init__(self, prefixes) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.seen = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for prefix in self.prefixes:
            if message.startswith(prefix):
                if prefix in self.seen or get_worker_info() is not None:
                    return False
                self.seen.add(prefix)
        return True


#: Deprecation warnings of the pinned stack that repeat (once per video,
#: once per logger).
REPEATED_WARNINGS = ('"FileClient" will be deprecated',
                     '"HardDiskBackend" is the alias of "LocalBackend"')
#: One filter for every logger, so each warning shows once per process.
ONCE = OnceFilter(REPEATED_WARNINGS)
#: Starts of the INFO dumps of mmengine 0.10.7's Runner: environment,
#: config, SyncBN note, hook order and checkpoint path (and mmengine's
#: loader naming its backend; our own line names the file and its SHA-256).
RUNNER_DUMPS = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                'Distributed training is not used',
                'Hooks will be executed in the following order',
                'Load checkpoint from ', 'Loads checkpoint by ')


def quiet_repeated_warnings(logger: logging.Logger) -> None:
    """Show each of :data:`REPEATED_WARNINGS` once per process."""
    if ONCE not in logger.filters:
        logger.addFilter(ONCE)


def brief_console(logger: logging.Logger, verbose: bool = False) -> None:
    """Keep :data:`RUNNER_DUMPS` out of the console handlers of ``logger``
    (unless ``verbose``) and show repeated warnings once.

    Args:
        logger (Logger): An ``MMLogger``; its file handler keeps everything.
        verbose (bool): Leave the console complete. Defaults to False.
    """
    quiet_repeated_warnings(logger)
    if verbose:
        return
    for handler in logger.handlers:
        if (type(handler) is logging.StreamHandler and not any(
                isinstance(f, PrefixFilter) for f in handler.filters)):
            handler.addFilter(PrefixFilter(RUNNER_DUMPS))


@RUNNERS.register_module()
class BriefConsoleRunner(Runner):
    """mmengine's ``Runner`` with a brief console (:func:`brief_console`);
    ``verbose = True`` in the config shows everything. What
    ``sta_mmaction.apis.runner_of`` builds unless the config names a
    ``runner_type``."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        brief_console(logger, bool(self.cfg.get('verbose', False)))
        return logger

    def load_checkpoint(self, *args, **kwargs):
        """``Runner.load_checkpoint``, its ``print``-ed lines logged.

        mmengine 0.10.7 names the loading backend with a logger of None, a
        bare ``print``; logged, it reaches the file and is filtered off the
        console with the other dumps.
        """
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            checkpoint = super().load_checkpoint(*args, **kwargs)
        for line in printed.getvalue().splitlines():
            self.logger.info(line)
        return checkpoint
