"""CheckpointKeysHook: a checkpoint must fill the model it is loaded into."""
import logging
from typing import Dict

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..utils.checkpoint import file_sha256, local_checkpoint_file
from ..utils.checkpoint_io import prepare_checkpoint
from ..models import unwrap
from .provenance import PREFIX


@HOOKS.register_module()
class CheckpointKeysHook(Hook):
    """Stop the run when a checkpoint does not fill the model exactly.

    MMAction2's ``tools/test.py`` loads with ``strict=False``, so a checkpoint
    of the wrong model silently leaves random weights behind. This hook runs
    on the loaded checkpoint before mmengine copies it into the model
    (``after_load_checkpoint``), so before any video is decoded: an original
    VideoMAE or Video Swin file is converted in place, and
    :func:`~sta_mmaction.utils.checkpoint_io.check_state_dict` refuses
    missing, unexpected, misshapen, non-tensor, wrongly typed and non-finite
    weights. A top-level ``allow_partial_load = True`` in the config
    (``tools/test.py --allow-partial-load``) lets keys be missing, for
    feature extraction from a backbone-only file.

    It records, in the message hub's runtime info, ``sta_provenance/``
    ``checkpoint`` (the config's ``load_from``, or the checkpoint a resumed
    run found in its work dir), ``checkpoint_file`` (the local file: for a
    URL its cached download; None for other schemes), ``checkpoint_sha256``
    (the first 12 hex digits of that file's SHA-256) and, with
    ``allow_partial_load``, ``partial_load`` and ``random_init_keys``.
    """

    priority = 'LOW'

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        source = runner.cfg.get('load_from')
        if not source and runner.cfg.get('resume'):
            from mmengine.runner import find_latest_checkpoint
            source = find_latest_checkpoint(runner.work_dir)
        partial = bool(runner.cfg.get('allow_partial_load', False))
        missing = prepare_checkpoint(
            unwrap(runner.model), checkpoint, source, partial)
        local = local_checkpoint_file(source) if source else None
        if local is None:
            print_log(
                f'The checkpoint {source} is no local file or cached '
                'download, so no file and SHA-256 are recorded for it.',
                logger='current',
                level=logging.WARNING)
        info = dict(
            checkpoint=source,
            checkpoint_file=local,
            checkpoint_sha256=file_sha256(local)[:12] if local else None)
        if partial:
            info.update(partial_load=True, random_init_keys=missing)
        for key, value in info.items():
            runner.message_hub.update_info(PREFIX + key, value)
