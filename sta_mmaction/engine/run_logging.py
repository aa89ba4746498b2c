"""Logging of a test run: one metrics JSON, readable default logs."""
import logging

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook
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


#: Messages of the pinned stack that repeat once per video.
REPEATED_WARNINGS = ('"FileClient" will be deprecated', )


def quiet_repeated_warnings(logger: logging.Logger) -> None:
    """Show each of :data:`REPEATED_WARNINGS` once on ``logger``."""
    if not any(isinstance(f, OnceFilter) for f in logger.filters):
        logger.addFilter(OnceFilter(REPEATED_WARNINGS))
