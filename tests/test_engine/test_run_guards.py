"""Guards of a run: a brief console, warnings once, finite losses, compile."""
import logging
import os
from types import SimpleNamespace

import pytest
import torch

from sta_mmaction.engine import FiniteLossHook, NonFiniteLossError
from sta_mmaction.engine.run_logging import (RUNNER_DUMPS, brief_console,
                                             quiet_repeated_warnings)
from sta_mmaction.engine.test_loop import check_amp


def records_of(logger):
    """The messages that reach ``logger``'s console handler."""
    seen = []
    console = logging.StreamHandler()
    console.emit = lambda record: seen.append(record.getMessage())
    logger.handlers = [console]
    return seen


def test_known_warning_once_per_process_across_loggers():
    """mmengine's duplicate filter is per logger; a Runner makes a new one."""
    first, second = (logging.getLogger(f'sta-once-{i}') for i in range(2))
    seen = records_of(first)
    second.handlers = first.handlers
    for logger in (first, second):
        quiet_repeated_warnings(logger)
        logger.warning('"HardDiskBackend" is the alias of "LocalBackend" '
                       'and the former will be deprecated in future.')
    assert len(seen) <= 1  # 0 if an earlier test of this process showed it


def test_brief_console_keeps_dumps_off_the_console_only():
    """As MMLogger: a StreamHandler console and a FileHandler."""
    logger = logging.getLogger('sta-brief-test')
    console, log_file = [], []
    for handler, seen in ((logging.StreamHandler(), console),
                          (logging.FileHandler(os.devnull), log_file)):
        handler.emit = lambda record, seen=seen: seen.append(
            record.getMessage())
        logger.addHandler(handler)
    brief_console(logger)
    for dump in RUNNER_DUMPS:
        logger.warning(dump + ' ...')
    logger.warning('Result: acc/top1=0.5')
    assert console == ['Result: acc/top1=0.5']
    assert len(log_file) == len(RUNNER_DUMPS) + 1


def test_non_finite_loss_stops_naming_the_iteration():
    runner = SimpleNamespace(iter=6, epoch=1)
    hook = FiniteLossHook()
    hook.after_train_iter(runner, 2, outputs=dict(
        loss=torch.tensor(0.7, requires_grad=True), top1_acc=float('nan')))
    with pytest.raises(NonFiniteLossError, match=r'iteration 7 \(epoch 2, '
                       r"batch 3\): \{'loss_cls': nan\}"):
        hook.after_train_iter(runner, 2, outputs=dict(
            loss_cls=torch.tensor(float('nan'))))
    assert hook.priority == 'ABOVE_NORMAL'  # before CheckpointHook


def test_fp16_on_cpu():
    check_amp(None, 'cuda', fp16=True)
    with pytest.raises(ValueError, match='bfloat16, not float16'):
        check_amp(None, 'cpu', fp16=True)
