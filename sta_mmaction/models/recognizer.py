"""STARecognizer3D: the recognizer of our configs, safe on every load route.

MMAction2's ``init_recognizer`` and ``MMAction2Inferencer`` load weights
with mmengine's ``strict=False`` copy, which only logs a misfit, and skip
the Runner's hooks, so ``CheckpointKeysHook`` never sees their file. Both
end in ``load_state_dict``, so the check runs there, in the model.
"""
from mmaction.models.recognizers import Recognizer3D
from mmaction.registry import MODELS

from ..utils.checkpoint import CheckpointError
from ..utils.checkpoint_io import prepare_checkpoint, strip_module_prefix


@MODELS.register_module()
class STARecognizer3D(Recognizer3D):
    """``Recognizer3D`` that refuses weights that do not fill it, and
    refuses to predict on weights that were never loaded.

    Every ``load_state_dict`` into it (mmengine's ``load_checkpoint``, the
    Runner, ``init_recognizer``, ``MMAction2Inferencer``, torch's own) goes
    through :func:`~sta_mmaction.utils.prepare_checkpoint` first: an
    original VideoMAE or Video Swin file is converted, a file that does not
    fill the model is a ``CheckpointError`` before any tensor is copied.
    ``test_step`` (``inference_recognizer``, the inferencer, the test loop)
    raises one while no weights were loaded or trained. Forward and outputs
    are ``Recognizer3D``'s.

    Args:
        allow_partial_load (bool): Let a loaded file leave tensors at their
            initial (random) weights; they are listed in a warning.
            Defaults to False.
        **kwargs: ``Recognizer3D``'s arguments.
    """

    def __init__(self, allow_partial_load: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.allow_partial_load = bool(allow_partial_load)
        self.weights_loaded = False

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # The children read their slices after this returns, so converting
        # ``state_dict`` in place is what they load.
        own = [k for k in state_dict if k.startswith(prefix)]
        source = f"the state dict loaded into {type(self).__name__}"
        checkpoint = {k[len(prefix):]: state_dict[k] for k in own}
        prepare_checkpoint(self, checkpoint, source, self.allow_partial_load)
        state = strip_module_prefix(
            checkpoint.get('state_dict', checkpoint), source)
        for key in own:
            del state_dict[key]
        state_dict.update((prefix + k, v) for k, v in state.items())
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self.weights_loaded = True

    def loss(self, inputs, data_samples, **kwargs) -> dict:
        # weights being trained are not random; the guard is for inference
        self.weights_loaded = True
        return super().loss(inputs, data_samples, **kwargs)

    def test_step(self, data) -> list:
        if not self.weights_loaded:
            raise CheckpointError(
                f'{type(self).__name__} has random weights: no checkpoint was '
                'loaded into it, so its predictions would mean nothing. Load '
                'one: init_recognizer(config, checkpoint), '
                'MMAction2Inferencer(rec=config, rec_weights=checkpoint) or '
                'python tools/test.py CONFIG CHECKPOINT.')
        return super().test_step(data)
