"""A prediction dump whose every entry names its video."""
from typing import Any, List, Sequence

from mmaction.registry import METRICS
from mmengine.evaluator import DumpResults

#: Metainfo that :class:`~sta_mmaction.datasets.SafeVideoDataset` sets on
#: every sample, and that each dumped entry must carry.
IDENTITY_KEYS = ('filename', 'sample_idx')
#: Fields of a data sample that hold the model's output.
PREDICTION_KEYS = ('pred_score', 'pred_label')


@METRICS.register_module()
class IdentifiedDumpResults(DumpResults):
    """mmengine's ``DumpResults``, one entry per video of the list, named.

    Every entry holds what ``DumpResults`` dumps plus ``filename``,
    ``sample_idx`` (the line's index in the annotation list, blank lines
    not counted) and ``skipped`` (bool). The entries are written in
    ``sample_idx`` order, so rows never depend on the order in which ranks
    or batches delivered them.

    A video that :class:`~sta_mmaction.datasets.SafeVideoDataset` skipped
    (``skip_corrupt=True``) still has its entry, with ``skipped=True``, its
    ``decode_error`` and no ``pred_score`` / ``pred_label``: the model only
    saw black placeholder frames. Inside
    :class:`~sta_mmaction.datasets.SkippedVideosMetric`, which leaves skipped
    samples out of the other metrics, this metric still receives them
    (``receives_skipped``).

    Args:
        out_file_path (str): Path of the pickle file; must end with
            ``.pkl`` or ``.pickle``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        collect_dir (str, optional): See ``DumpResults``. Defaults to None.
    """

    #: :class:`~sta_mmaction.datasets.SkippedVideosMetric` forwards skipped
    #: samples to metrics that set this.
    receives_skipped = True

    def process(self, data_batch: Any, predictions: Sequence[dict]) -> None:
        """Keep each prediction with its video's identity.

        Raises:
            ValueError: A prediction lacks ``filename`` or ``sample_idx``
                (its dataset is not a ``SafeVideoDataset``).
        """
        for pred in predictions:
            missing = [k for k in IDENTITY_KEYS if k not in pred]
            if missing:
                raise ValueError(
                    f'IdentifiedDumpResults: a prediction has no {missing} '
                    f'in its metainfo (keys: {sorted(pred)}); its dataset '
                    'must be a SafeVideoDataset, which sets them on every '
                    "sample: set test_dataloader.dataset.type="
                    "'SafeVideoDataset'.")
            entry = dict(pred)
            entry['skipped'] = pred.get('skipped_video') is not None
            if entry['skipped']:
                for key in PREDICTION_KEYS:
                    entry.pop(key, None)
            super().process(data_batch, [entry])

    def compute_metrics(self, results: List[dict]) -> dict:
        """Dump the entries in list order.

        Raises:
            ValueError: Two entries share a ``sample_idx`` (the sampler's
                padding was not cut off), so rows would not be one per
                video.
        """
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
