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

    MMAction2 loads with ``strict=False``, so a checkpoint of the wrong model
    silently leaves random weights behind. Before any video is decoded, an
    original VideoMAE or Video Swin file is converted in place and bad
    weights are refused (``check_state_dict``); ``allow_partial_load = True``
    (or an ``STARecognizer3D``'s ``model.allow_partial_load``) lets keys be
    missing. It records ``checkpoint``, ``checkpoint_file``,
    ``checkpoint_sha256`` (12 hex digits) and any partial load under
    ``sta_provenance/``.
    """

    priority = 'LOW'

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        source = runner.cfg.get('load_from')
        if not source and runner.cfg.get('resume'):
            from mmengine.runner import find_latest_checkpoint
            source = find_latest_checkpoint(runner.work_dir)
        model = unwrap(runner.model)
        partial = bool(runner.cfg.get('allow_partial_load', False)
                       or getattr(model, 'allow_partial_load', False))
        if partial and hasattr(model, 'allow_partial_load'):
            # an STARecognizer3D checks the copy that follows, too
            model.allow_partial_load = True
        missing = prepare_checkpoint(model, checkpoint, source, partial)
        local = local_checkpoint_file(source) if source else None
        if local is None:
            print_log(
                f'The checkpoint {source} is no local file or cached '
                'download, so no file and SHA-256 are recorded for it.',
                logger='current', level=logging.WARNING)
        info = dict(
            checkpoint=source, checkpoint_file=local,
            checkpoint_sha256=file_sha256(local)[:12] if local else None)
        if partial:
            info.update(partial_load=True, random_init_keys=missing)
        for key, value in info.items():
            runner.message_hub.update_info(PREFIX + key, value)
