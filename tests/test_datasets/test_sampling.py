"""VideoMAE's SSV2 and Kinetics-400 test views, against VideoMAE's rules.

The references below restate MCG-NJU/VideoMAE's ``ssv2.py`` and
``kinetics.py`` test code the way it is written there (lists, a sort and a
stride for SSV2, slicing of the decoded buffer), not the way
``sta_mmaction/datasets/sampling.py`` computes it.
"""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from mmaction.registry import DATASETS, TRANSFORMS
from mmengine.config import Config

from sta_mmaction.datasets.sampling import (videomae_kinetics_indices,
                                            videomae_ssv2_indices,
                                            videomae_three_crop_boxes)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Shorter than 16 frames, exactly 16, around the 64-frame span of a K400
#: clip, and several hundred.
LENGTHS = (1, 5, 15, 16, 17, 20, 61, 63, 64, 65, 150, 280, 300, 301, 457, 999)


def ssv2_reference(num_frames, segments=16, views=2):
    """VideoMAE ssv2.py, test mode: one sorted list, view v = list[v::2]."""
    tick = num_frames / float(segments)
    index = [int(tick / 2.0 + tick * x) for x in range(segments)]
    index += [int(tick * x) for x in range(segments)]
    while len(index) < segments * views:
        index.append(index[-1])
    index = sorted(index)
    return [index[view::2] for view in range(views)]


def kinetics_reference(num_frames, clip_len=16, rate=4, segments=5):
    """VideoMAE kinetics.py, test mode: a strided buffer, sliced per view."""
    buffer = list(range(0, num_frames, rate))
    while len(buffer) < clip_len:
        buffer.append(buffer[-1])
    step = max(1.0 * (len(buffer) - clip_len) / (segments - 1), 0)
    views = []
    for chunk in range(segments):
        start = int(chunk * step)
        views.append(buffer[start:start + clip_len])
    return views


def videomae_resize(frame, short_side=224):
    """VideoMAE functional.resize_clip for one numpy frame, bilinear."""
    h, w = frame.shape[:2]
    if (w <= h and w == short_side) or (h <= w and h == short_side):
        return frame
    if w < h:
        size = (short_side, int(short_side * h / w))
    else:
        size = (int(short_side * w / h), short_side)
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def videomae_crop(buffer, split, short_side=224, crops=3):
    """VideoMAE's spatial crop of a (T, H, W, C) buffer after the resize."""
    step = 1.0 * (max(buffer.shape[1], buffer.shape[2]) - short_side) / (
        crops - 1)
    start = int(split * step)
    if buffer.shape[1] >= buffer.shape[2]:
        return buffer[:, start:start + short_side, :, :]
    return buffer[:, :, start:start + short_side, :]


def sample(transform, num_frames, start_index=0):
    return TRANSFORMS.build(transform)(
        dict(total_frames=num_frames, start_index=start_index))


@pytest.mark.parametrize('num_frames', LENGTHS)
def test_ssv2_indices_are_videomae(num_frames):
    expected = np.array(ssv2_reference(num_frames))
    assert np.array_equal(videomae_ssv2_indices(num_frames), expected)
    out = sample(
        dict(type='VideoMAESSV2Sample', clip_len=16, num_clips=2), num_frames)
    assert np.array_equal(out['frame_inds'], expected.reshape(-1))
    assert (out['clip_len'], out['num_clips']) == (16, 2)


def test_ssv2_indices_by_hand_and_not_uniform_sample():
    # tick = 1.25: segment starts, then the half-tick points.
    assert videomae_ssv2_indices(20).tolist() == [
        [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18],
        [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19],
    ]
    uniform = sample(
        dict(type='UniformSample', clip_len=16, num_clips=2, test_mode=True),
        300)
    ours = sample(dict(type='VideoMAESSV2Sample'), 300)
    assert not np.array_equal(uniform['frame_inds'], ours['frame_inds'])


def test_one_ssv2_clip_is_videomae_view_zero():
    """The quick path's num_clips=1 keeps VideoMAE's first view."""
    for num_frames in (5, 16, 300):
        out = sample(dict(type='VideoMAESSV2Sample', num_clips=1), num_frames)
        assert out['num_clips'] == 1
        assert out['frame_inds'].tolist() == ssv2_reference(num_frames,
                                                            views=1)[0]


def test_start_index_is_added():
    out = sample(dict(type='VideoMAESSV2Sample'), 300, start_index=1)
    assert np.array_equal(out['frame_inds'],
                          np.array(ssv2_reference(300)).reshape(-1) + 1)
    out = sample(dict(type='VideoMAEKineticsSample'), 300, start_index=1)
    assert np.array_equal(out['frame_inds'],
                          np.array(kinetics_reference(300)).reshape(-1) + 1)


@pytest.mark.parametrize('num_frames', LENGTHS)
def test_kinetics_indices_are_videomae(num_frames):
    expected = np.array(kinetics_reference(num_frames))
    assert np.array_equal(videomae_kinetics_indices(num_frames), expected)
    out = sample(
        dict(
            type='VideoMAEKineticsSample',
            clip_len=16,
            frame_interval=4,
            num_clips=5,
            test_mode=True), num_frames)
    assert np.array_equal(out['frame_inds'], expected.reshape(-1))
    assert (out['clip_len'], out['frame_interval'],
            out['num_clips']) == (16, 4, 5)


@pytest.mark.parametrize('num_frames', (10, 64, 300))
def test_mmaction2_sample_frames_is_not_videomae_kinetics(num_frames):
    """The check of issue 13: MMAction2's K400 sampling picks other frames.

    At 300 frames VideoMAE's clips start at frames 0, 56, 116, 176, 236 and
    MMAction2's at 23, 71, 118, 165, 213; a 10-frame video is looped by
    MMAction2 and padded with its last frame by VideoMAE.
    """
    mm = sample(
        dict(
            type='SampleFrames',
            clip_len=16,
            frame_interval=4,
            num_clips=5,
            test_mode=True), num_frames)
    expected = np.array(kinetics_reference(num_frames)).reshape(-1)
    assert not np.array_equal(mm['frame_inds'], expected)
    if num_frames == 300:
        assert expected[::16].tolist() == [0, 56, 116, 176, 236]


def test_one_kinetics_clip_is_the_middle_one():
    # 75 grid frames: VideoMAE's views start at positions 0 .. 59.
    out = sample(dict(type='VideoMAEKineticsSample', num_clips=1), 300)
    assert out['frame_inds'].tolist() == [4 * (29 + j) for j in range(16)]
    assert sample(dict(type='VideoMAEKineticsSample', num_clips=1),
                  10)['frame_inds'].tolist() == [0, 4] + [8] * 14


# (frame height, frame width) -> VideoMAE's boxes [x1, y1, x2, y2] after
# its resize to short side 224 (297.5 truncates to 297; margin 73).
BOXES = {
    (256, 340): [[0, 0, 224, 224], [36, 0, 260, 224], [73, 0, 297, 224]],
    (340, 256): [[0, 0, 224, 224], [0, 36, 224, 260], [0, 73, 224, 297]],
    (224, 224): [[0, 0, 224, 224]] * 3,
}


@pytest.mark.parametrize('shape', sorted(BOXES))
def test_resize_and_three_crops_are_videomae(shape):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, ) + shape + (3, ), dtype=np.uint8)
    results = dict(imgs=list(frames), img_shape=shape)
    results = TRANSFORMS.build(dict(type='VideoMAEResize', short_side=224))(
        results)
    results = TRANSFORMS.build(dict(type='VideoMAEThreeCrop',
                                    crop_size=224))(results)
    assert results['crop_bbox'].tolist() == [
        box for box in BOXES[shape] for _ in range(2)
    ]
    buffer = np.stack([videomae_resize(f) for f in frames])
    got = np.stack(results['imgs']).reshape((3, 2, 224, 224, 3))
    for split in range(3):
        assert np.array_equal(got[split], videomae_crop(buffer, split))
    assert results['img_shape'] == (224, 224)


@pytest.mark.parametrize('shape', [(256, 340), (340, 256)])
def test_mmaction2_resize_three_crop_is_not_videomae(shape):
    """MMAction2 rounds the long side to 298 and crops at 0, 74 and 37."""
    results = dict(imgs=[np.zeros(shape + (3, ), np.uint8)], img_shape=shape)
    for step in (dict(type='Resize', scale=(-1, 224)),
                 dict(type='ThreeCrop', crop_size=224)):
        results = TRANSFORMS.build(step)(results)
    mm = sorted(results['crop_bbox'].tolist())
    assert mm != sorted(BOXES[shape])
    assert max(max(box) for box in mm) == 298


@pytest.mark.parametrize('shape', [(256, 340), (340, 256)])
def test_center_crop_is_videomae_middle_crop(shape):
    """The quick path's CenterCrop is VideoMAE's middle crop."""
    h, w = shape
    new = (224, 297) if h < w else (297, 224)
    results = TRANSFORMS.build(dict(type='CenterCrop', crop_size=224))(
        dict(imgs=[np.zeros(new + (3, ), np.uint8)], img_shape=new))
    assert results['crop_bbox'].tolist() == videomae_three_crop_boxes(
        *new, 224)[1].tolist()


@pytest.mark.parametrize('bad, match', [
    (dict(type='VideoMAESSV2Sample', num_clips=3), 'num_clips=3'),
    (dict(type='VideoMAESSV2Sample', test_mode=False), 'test_mode=False'),
    (dict(type='VideoMAESSV2Sample', clip_len=0), 'clip_len'),
    (dict(type='VideoMAEKineticsSample', frame_interval=0), 'frame_interval'),
    (dict(type='VideoMAEKineticsSample', num_clips=0), 'num_clips'),
    (dict(type='VideoMAEKineticsSample', test_mode=False), 'test_mode'),
    (dict(type='VideoMAEResize', short_side=-224), 'short_side'),
    (dict(type='VideoMAEThreeCrop', crop_size=0), 'crop_size'),
])
def test_bad_settings_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(bad)


@pytest.mark.parametrize('kind', ['VideoMAESSV2Sample',
                                  'VideoMAEKineticsSample'])
def test_a_video_without_frames_is_named(kind):
    with pytest.raises(ValueError, match=r"'empty\.mp4'.*total_frames=0"):
        TRANSFORMS.build(dict(type=kind))(
            dict(total_frames=0, start_index=0, filename='empty.mp4'))


def test_crop_before_resize_says_what_to_do():
    with pytest.raises(ValueError, match=r'256x340.*VideoMAEResize'):
        TRANSFORMS.build(dict(type='VideoMAEThreeCrop', crop_size=224))(
            dict(imgs=[np.zeros((256, 340, 3), np.uint8)], filename='a.mp4'))


VIT_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'sta_vit*_r0.py')))


@pytest.mark.parametrize('path', VIT_CONFIGS, ids=osp.basename)
def test_vit_configs_use_videomae_views(path):
    cfg = Config.fromfile(path)
    steps = {s['type']: s for s in cfg.test_dataloader.dataset.pipeline}
    mm = [s['type'] for s in cfg.mmaction2_test_pipeline]
    if '_ssv2_' in path:
        assert steps['VideoMAESSV2Sample'] == dict(
            type='VideoMAESSV2Sample', clip_len=16, num_clips=2,
            test_mode=True)
        assert 'UniformSample' in mm
    else:
        assert steps['VideoMAEKineticsSample'] == dict(
            type='VideoMAEKineticsSample', clip_len=16, frame_interval=4,
            num_clips=5, test_mode=True)
        assert 'SampleFrames' in mm
    assert steps['VideoMAEResize']['short_side'] == 224
    assert steps['VideoMAEThreeCrop']['crop_size'] == 224
    assert 'ThreeCrop' in mm and 'Resize' in mm


@pytest.mark.parametrize('protocol, views', [('ssv2', 6), ('k400', 15)])
def test_real_clip_views_are_videomae(protocol, views, shared_data, tmp_path):
    """demo.mp4 (280 frames, 340x256) through the ViT-S config's pipeline."""
    import decord
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', f'sta_vits_{protocol}_r0.py'))
    ann = tmp_path / 'list.txt'
    ann.write_text('demo.mp4 0\n')
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.ann_file = str(ann)
    ds_cfg.data_prefix = dict(video=shared_data)
    inputs = DATASETS.build(ds_cfg)[0]['inputs']  # (views, C, T, H, W)
    assert tuple(inputs.shape) == (views, 3, 16, 224, 224)

    reader = decord.VideoReader(osp.join(shared_data, 'demo.mp4'))
    if protocol == 'ssv2':
        clips = ssv2_reference(len(reader))
    else:
        clips = kinetics_reference(len(reader))
    # Crop 2 (right) of the last clip: it moves with both the resize and
    # the crop offset, and MMAction2's ThreeCrop lays crops out the same way.
    buffer = np.stack(
        [videomae_resize(f) for f in reader.get_batch(clips[-1]).asnumpy()])
    expected = videomae_crop(buffer, 2).transpose(3, 0, 1, 2)  # (C, T, H, W)
    got = inputs[2 * len(clips) + len(clips) - 1].numpy()
    assert np.array_equal(got, expected)
