"""An evaluator wrapper that leaves skipped videos out, and says so."""
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmaction.registry import METRICS
from mmengine.dist import broadcast_object_list, collect_results, \
    is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

MetricCfg = Union[dict, BaseMetric]


@METRICS.register_module()
class SkippedVideosMetric(BaseMetric):
    """Evaluate the videos that were read; count and list those that were not.

    Wraps the real metrics (``AccMetric``, ``DumpResults``, ...). Samples
    that :class:`~sta_mmaction.datasets.SafeVideoDataset` marked
    ``skipped_video`` (with ``skip_corrupt=True``) are kept out of every
    wrapped metric, so accuracy is computed over the evaluated videos only,
    and the result gains:

    * ``num_evaluated``: videos the wrapped metrics were computed on;
    * ``num_skipped``: videos that could not be read (both counts are
      floats, since mmengine's JSON log drops integer scalars);
    * ``skipped_videos``: their file names.

    ``num_evaluated + num_skipped`` is the dataset size: a sample is never
    dropped without being counted. Results are kept one entry per sample, so
    the distributed sampler's padding is cut off exactly as for any metric.

    Args:
        wrapped (dict | BaseMetric | list): The metric(s) to wrap, as configs
            or built metrics. Each is fed one sample at a time, with the
            whole batch as ``data_batch``. (Not called ``metrics``: mmengine
            reads a ``test_evaluator`` dict with that key as an
            ``Evaluator`` config.)
        out_file (str, optional): Where rank 0 writes the skipped files, one
            per line (an empty file when none was skipped). Defaults to
            None, which writes nothing; ``tools/test.py`` sets
            ``<work_dir>/skipped_videos.txt``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the three keys above; the wrapped
            metrics keep their own prefixes. Defaults to None (no prefix).
        collect_dir (str, optional): See ``BaseMetric``. Defaults to None.
    """

    default_prefix = ''

    def __init__(self,
                 wrapped: Union[MetricCfg, Sequence[MetricCfg]],
                 out_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if isinstance(wrapped, (dict, BaseMetric)):
            wrapped = [wrapped]
        if not wrapped:
            raise ValueError('SkippedVideosMetric needs metrics to wrap, got '
                             f'wrapped={wrapped!r}; pass e.g. '
                             "wrapped=dict(type='AccMetric').")
        self.metrics: List[BaseMetric] = [
            m if isinstance(m, BaseMetric) else METRICS.build(m)
            for m in wrapped
        ]
        self.out_file = out_file

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        for metric in self.metrics:
            metric.dataset_meta = dataset_meta

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Route each sample to the wrapped metrics, or record its skip."""
        for sample in data_samples:
            name = sample.get('skipped_video')
            if name is not None:
                self.results.append(
                    dict(skipped=name, reason=sample.get('decode_error', '')))
                continue
            entries = []
            for metric in self.metrics:
                start = len(metric.results)
                metric.process(data_batch, [sample])
                entries.append(metric.results[start:])
                del metric.results[start:]
            self.results.append(dict(entries=entries))

    def evaluate(self, size: int) -> dict:
        """Collect one entry per sample from all ranks and compute on rank 0.

        Args:
            size (int): Length of the dataset; padded samples are cut off.
        """
        if self.collect_device == 'cpu':
            results = collect_results(
                self.results, size, 'cpu', tmpdir=self.collect_dir)
        else:
            results = collect_results(self.results, size, self.collect_device)
        out = [self.compute_metrics(_to_cpu(results))
               ] if is_main_process() else [None]
        broadcast_object_list(out)
        self.results.clear()
        return out[0]

    def compute_metrics(self, results: List[dict]) -> Dict[str, Any]:
        kept = [r for r in results if 'skipped' not in r]
        skipped = [r for r in results if 'skipped' in r]
        metrics: Dict[str, Any] = {}
        if kept:
            for i, metric in enumerate(self.metrics):
                part = [e for r in kept for e in r['entries'][i]]
                for key, value in metric.compute_metrics(part).items():
                    key = f'{metric.prefix}/{key}' if metric.prefix else key
                    if key in metrics:
                        raise ValueError(
                            f'Two wrapped metrics both report {key!r}; give '
                            'them different prefixes.')
                    metrics[key] = value
        else:
            print_log(
                f'All {len(results)} videos were skipped: no metric could be '
                'computed.',
                logger='current',
                level=40)
        names = [r['skipped'] for r in skipped]
        # floats: mmengine's JSON log drops the numpy ints it makes of ints
        for key, value in (('num_evaluated', float(len(kept))),
                           ('num_skipped', float(len(skipped))),
                           ('skipped_videos', names)):
            metrics[f'{self.prefix}/{key}' if self.prefix else key] = value
        if skipped:
            print_log(
                f'Evaluated {len(kept)} of {len(results)} videos; skipped '
                f'{len(skipped)} that could not be read:\n' + '\n'.join(
                    f'  {r["skipped"]}: {r["reason"]}' for r in skipped),
                logger='current',
                level=30)
        if self.out_file:
            os.makedirs(osp.dirname(osp.abspath(self.out_file)), exist_ok=True)
            with open(self.out_file, 'w') as f:
                f.write(''.join(f'{n}\n' for n in names))
            print_log(
                f'{len(names)} skipped videos listed in {self.out_file}',
                logger='current')
        return metrics


def _to_cpu(data: Any) -> Any:
    """Move tensors nested in lists, tuples and dicts to the CPU."""
    if isinstance(data, torch.Tensor):
        return data.cpu()
    if isinstance(data, (list, tuple)):
        return type(data)(_to_cpu(d) for d in data)
    if isinstance(data, dict):
        return {k: _to_cpu(v) for k, v in data.items()}
    return data
