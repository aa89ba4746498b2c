"""Datasets and metrics that make unreadable videos loud, or counted."""
from .safe_decode import CorruptVideoError, SafeVideoDataset
from .skipped_metric import SkippedVideosMetric

__all__ = ['CorruptVideoError', 'SafeVideoDataset', 'SkippedVideosMetric']
