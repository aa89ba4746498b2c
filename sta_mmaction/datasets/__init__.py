"""Checked annotation lists, named or counted decode failures, named dumps."""
from .annotations import AnnotationError, load_video_list
from .dump import IdentifiedDumpResults
from .safe_decode import CorruptVideoError, SafeVideoDataset
from .sampling import (VideoMAEKineticsSample, VideoMAEResize,
                       VideoMAESSV2Sample, VideoMAEThreeCrop)
from .skipped_metric import NothingEvaluatedError, SkippedVideosMetric
from .wiring import set_num_classes_from_head, wire_test_data

__all__ = [
    'AnnotationError', 'CorruptVideoError', 'IdentifiedDumpResults',
    'NothingEvaluatedError', 'SafeVideoDataset', 'SkippedVideosMetric',
    'load_video_list', 'set_num_classes_from_head', 'wire_test_data',
    'VideoMAEKineticsSample', 'VideoMAEResize', 'VideoMAESSV2Sample',
    'VideoMAEThreeCrop'
]
