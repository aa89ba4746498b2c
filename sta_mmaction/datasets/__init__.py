"""Checked annotation lists, named/counted decode failures, VideoMAE views."""
from .annotations import AnnotationError, load_video_list
from .safe_decode import CorruptVideoError, SafeVideoDataset
from .sampling import (VideoMAEKineticsSample, VideoMAEResize,
                       VideoMAESSV2Sample, VideoMAEThreeCrop,
                       single_view_pipeline)
from .wiring import (set_num_classes_from_head, wire_test_data,
                     wire_train_data)

__all__ = [
    'AnnotationError', 'CorruptVideoError', 'SafeVideoDataset',
    'load_video_list', 'set_num_classes_from_head', 'wire_test_data',
    'wire_train_data',
    'VideoMAEKineticsSample', 'VideoMAEResize', 'VideoMAESSV2Sample',
    'VideoMAEThreeCrop', 'single_view_pipeline'
]
