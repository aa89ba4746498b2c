"""A prediction dump whose every entry names its video."""
from typing import Any, List, Sequence

from mmaction.registry import METRICS
from mmengine.evaluator import DumpResults

#: Metainfo that ``SafeVideoDataset`` sets on every sample, and every entry
#: must carry; and the fields that hold the model's output.
IDENTITY_KEYS = ('filename', 'sample_idx')
PREDICTION_KEYS = ('pred_score', 'pred_label')


@METRICS.register_module()
class IdentifiedDumpResults(DumpResults):
    """mmengine's ``DumpResults``, one entry per video of the list, named.

    Every entry adds ``filename``, ``sample_idx`` (the line's index in the
    annotation list, blank lines not counted) and ``skipped`` (bool); entries
    are written in ``sample_idx`` order. A video that ``SafeVideoDataset``
    skipped keeps its entry, with its ``decode_error`` and no ``pred_score``
    or ``pred_label``; ``SkippedVideosMetric`` still forwards skipped samples
    here (``receives_skipped``).

    Args:
        out_file_path (str): Path of the pickle file; must end with
            ``.pkl`` or ``.pickle``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        collect_dir (str, optional): See ``DumpResults``. Defaults to None.
    """

    receives_skipped = True
    # it computes no metric to prefix; set, so BaseMetric does not warn
    default_prefix = 'dump'

    def process(self, data_batch: Any, predictions: Sequence[dict]) -> None:
        """Keep each prediction with its video's identity; ``ValueError`` if
        it lacks one (its dataset is not a ``SafeVideoDataset``)."""
        for pred in predictions:
            missing = [k for k in IDENTITY_KEYS if k not in pred]
            if missing:
                raise ValueError(
                    f'IdentifiedDumpResults: a prediction has no {missing} '
                    f'in its metainfo (keys: {sorted(pred)}); its dataset '
                    'must be a SafeVideoDataset, which sets them on every '
                    "sample: set test_dataloader.dataset.type="
                    "'SafeVideoDataset'.")
            entry = dict(pred, skipped=pred.get('skipped_video') is not None)
            if entry['skipped']:
                for key in PREDICTION_KEYS:
                    entry.pop(key, None)
            super().process(data_batch, [entry])

    def compute_metrics(self, results: List[dict]) -> dict:
        """Dump the entries in list order; ``ValueError`` if two share a
        ``sample_idx`` (the sampler's padding was not cut off)."""
        results = sorted(results, key=lambda r: r['sample_idx'])
        indices = [r['sample_idx'] for r in results]
        repeated = sorted({i for i, j in zip(indices, indices[1:]) if i == j})
        if repeated:
            raise ValueError(
                f'IdentifiedDumpResults: sample_idx {repeated[:10]} appear '
                'more than once, so the dump would not be one row per video; '
                'the evaluator was given the padded samples of a '
                'distributed sampler. Evaluate with the size of the dataset.')
        return super().compute_metrics(results)
