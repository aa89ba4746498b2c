"""Metrics of a test run: skipped videos counted, every dumped row named."""
from .dump import IdentifiedDumpResults
from .skipped_metric import NothingEvaluatedError, SkippedVideosMetric

__all__ = [
    'IdentifiedDumpResults', 'NothingEvaluatedError', 'SkippedVideosMetric'
]
