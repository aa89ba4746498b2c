"""sta_mmaction.synthetic: the one generator of synthetic clips."""
import numpy as np

from sta_mmaction.synthetic import CLASSES, render_clip


def test_generated_clips_move_and_differ():
    frames = {kind: render_clip(kind, seed=3, num_frames=64, side=240)
              for kind in CLASSES}
    for kind, clip in frames.items():
        assert clip.shape == (64, 240, 240, 3) and clip.dtype == np.uint8
        # content moves: the first and the middle frame differ clearly
        assert np.abs(clip[0].astype(int) - clip[32]).mean() > 2, kind
    assert not np.array_equal(frames[CLASSES[0]], frames[CLASSES[1]])


def test_object_mask_marks_the_object_and_leaves_frames_alone():
    frames, masks = render_clip('cross', 7, 4, 64, noise=0., with_mask=True)
    np.testing.assert_array_equal(frames, render_clip('cross', 7, 4, 64,
                                                      noise=0.))
    assert masks.shape == (4, 64, 64) and masks.dtype == bool
    for frame, mask in zip(frames, masks):
        inside = frame[mask].reshape(-1, 3)
        assert 0 < mask.mean() < 0.2
        assert (inside == inside[0]).all()  # one flat colour, no noise
        assert not (frame[~mask] == inside[0]).all(-1).any()
