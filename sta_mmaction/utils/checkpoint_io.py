"""Write checkpoints the way mmengine's Runner does, and load them back.

The demo saves random weights so that the real test loop (which loads a
checkpoint) runs with nothing downloaded; the tests use the same writer, so
what they load is shaped exactly like a trained mmengine checkpoint.
"""
import time
from typing import Dict, Mapping, Optional

import numpy as np
from mmengine.logging import print_log
from torch import nn


def save_mmengine_checkpoint(state_dict: Mapping,
                             path: str,
                             cfg_text: str = '',
                             meta: Optional[Dict] = None) -> str:
    """Write a checkpoint shaped like ``Runner.save_checkpoint`` writes it.

    Its meta and message hub hold numpy scalars, a ``ConfigDict`` and
    ``HistoryBuffer`` objects, as a trained checkpoint does; torch's
    weights-only loader refuses them unless they are allow-listed (which
    ``sta_mmaction`` does).

    Args:
        state_dict (Mapping): Model weights; saved on the CPU.
        path (str): Output file.
        cfg_text (str): Config text stored in the meta. Defaults to ''.
        meta (dict, optional): Extra meta entries. Defaults to None.

    Returns:
        str: ``path``.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance(f'ckpt-{time.time_ns()}')
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_scalar('train/lr', 1e-3)
    hub.update_info('best_score', np.float64(0.5))
    full_meta = dict(
        epoch=1,
        iter=10,
        cfg=cfg_text,
        seed=np.int64(0),
        experiment_name='sta-test',
        time=time.asctime(),
        mmengine_version='0.10.7',
        dataset_meta=ConfigDict(num_classes=400))
    full_meta.update(meta or {})
    save_checkpoint(
        dict(
            meta=full_meta,
            state_dict={
                k: v.cpu()
                for k, v in state_dict.items()
            },
            message_hub=hub.state_dict()), str(path))
    return str(path)


def load_recognizer_weights(model: nn.Module,
                            checkpoint: str,
                            prefix: str = 'backbone.') -> Dict:
    """Load a checkpoint file or URL into a recognizer, loudly.

    Goes through mmengine's loaders (made safe by ``sta_mmaction``). An
    original VideoMAE release file is converted to MMAction2's keys first.
    Missing or unexpected keys are logged; a missing backbone weight raises,
    since the model would then silently keep random weights.

    Args:
        model (nn.Module): The built recognizer.
        checkpoint (str): Path or URL.
        prefix (str): Prefix of the backbone's keys. Defaults to
            ``'backbone.'``.

    Returns:
        dict: The loaded checkpoint.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    from .videomae_convert import (convert_videomae_state_dict,
                                   is_original_videomae)
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if is_original_videomae(ckpt):
        state = convert_videomae_state_dict(ckpt, model)
    else:
        state = ckpt.get('state_dict', ckpt)
    state = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state.items()
    }
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(prefix)]
    if missing:
        raise ValueError(
            f'{checkpoint} lacks {len(missing)} backbone weights of the '
            f'model, e.g. {missing[:5]}; it does not fit this config.')
    if result.missing_keys or result.unexpected_keys:
        print_log(
            f'Loaded {checkpoint}: missing keys {result.missing_keys[:5]}, '
            f'unexpected keys {result.unexpected_keys[:5]}',
            logger='current',
            level=30)
    return ckpt
