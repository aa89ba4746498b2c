"""CheckpointKeysHook: a checkpoint must fill the model it is loaded into."""
import logging
from typing import Dict

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..utils.checkpoint import pop_last_loaded
from ..utils.checkpoint_io import prepare_checkpoint
from .hooks import unwrap
from .provenance import PREFIX


@HOOKS.register_module()
class CheckpointKeysHook(Hook):
    """Stop the run when a checkpoint does not fill the model exactly.

    MMAction2's ``tools/test.py`` loads with ``strict=False``, so a checkpoint
    of the wrong model silently leaves random weights behind. This hook runs
    on the loaded checkpoint before mmengine copies it into the model
    (``after_load_checkpoint``), so before any video is decoded: an original
    VideoMAE file is converted in place, and
    :func:`~sta_mmaction.utils.checkpoint_io.check_state_dict` refuses
    missing, unexpected, misshapen, non-tensor, wrongly typed and non-finite
    weights. A top-level ``allow_partial_load = True`` in the config
    (``tools/test.py --allow-partial-load``) lets keys be missing, for
    feature extraction from a backbone-only file.

    It records, in the message hub's runtime info, ``sta_provenance/``
    ``checkpoint`` (as given), ``checkpoint_file`` (the local file read; for a
    URL the cached download), ``checkpoint_sha256`` (its first 12 hex
    digits) and, with ``allow_partial_load``, ``partial_load`` and
    ``random_init_keys``.
    """

    priority = 'LOW'

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        record = pop_last_loaded()
        source = runner.cfg.get('load_from') or (record.source
                                                 if record else None)
        partial = bool(runner.cfg.get('allow_partial_load', False))
        missing = prepare_checkpoint(
            unwrap(runner.model), checkpoint, source, partial)
        if record is None:
            print_log(
                f'The checkpoint {source} was not read by sta_mmaction\'s '
                'loaders, so its local file and SHA-256 are not recorded.',
                logger='current',
                level=logging.WARNING)
        info = dict(
            checkpoint=source,
            checkpoint_file=record.local_file if record else None,
            checkpoint_sha256=record.sha256[:12] if record else None)
        if partial:
            info.update(partial_load=True, random_init_keys=missing)
        for key, value in info.items():
            runner.message_hub.update_info(PREFIX + key, value)
