"""An evaluator wrapper that leaves skipped videos out, and says so."""
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmaction.registry import METRICS
from mmengine.dist import broadcast_object_list, collect_results, \
    is_main_process
from mmengine.evaluator import BaseMetric, DumpResults
from mmengine.logging import print_log

MetricCfg = Union[dict, BaseMetric]


class NothingEvaluatedError(ValueError):
    """Every video of the test was skipped: there is no metric to report."""


@METRICS.register_module()
class SkippedVideosMetric(BaseMetric):
    """Evaluate the videos that were read; count and list those that were not.

    Samples marked ``skipped_video`` reach only the wrapped metrics that set
    ``receives_skipped`` (``IdentifiedDumpResults``; a plain ``DumpResults``,
    whose rows name no file, is refused). The result gains ``num_evaluated``
    and ``num_skipped`` (floats: mmengine's JSON log drops integer scalars),
    which add up to the dataset size, and ``skipped_videos``. If every video
    was skipped, :class:`NothingEvaluatedError` is raised (after ``out_file``
    is written), so the run exits non-zero.

    Args:
        wrapped (dict | BaseMetric | list): The metric(s) to wrap, as configs
            or built metrics. (Not ``metrics``: mmengine would read the
            ``test_evaluator`` as an ``Evaluator`` config.)
        out_file (str, optional): Where rank 0 writes the skipped files, one
            per line. Defaults to None (nothing written).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the three keys above; the wrapped
            metrics keep their own. Defaults to None (no prefix).
        collect_dir (str, optional): See ``BaseMetric``. Defaults to None.
    """

    default_prefix = ''

    def __init__(self, wrapped: Union[MetricCfg, Sequence[MetricCfg]],
                 out_file: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        if isinstance(wrapped, (dict, BaseMetric)):
            wrapped = [wrapped]
        if not wrapped:
            raise ValueError('SkippedVideosMetric needs metrics to wrap, got '
                             f'wrapped={wrapped!r}; pass e.g. '
                             "wrapped=dict(type='AccMetric').")
        self.metrics: List[BaseMetric] = [
            m if isinstance(m, BaseMetric) else METRICS.build(m)
            for m in wrapped]
        for metric in self.metrics:
            if isinstance(metric, DumpResults) and not getattr(
                    metric, 'receives_skipped', False):
                raise ValueError(
                    f'SkippedVideosMetric cannot wrap {type(metric).__name__}'
                    ': it would leave the skipped videos out of the dump, '
                    'whose rows name no file, so every row after a skipped '
                    "video would belong to the wrong one. Use dict(type="
                    "'IdentifiedDumpResults', out_file_path=...) instead.")
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
        """Route each sample to the wrapped metrics (a skipped one only to
        those that set ``receives_skipped``) and record its skip."""
        for sample in data_samples:
            name = sample.get('skipped_video')
            entries = []
            for metric in self.metrics:
                if name is not None and not getattr(
                        metric, 'receives_skipped', False):
                    entries.append([])
                    continue
                start = len(metric.results)
                metric.process(data_batch, [sample])
                entries.append(metric.results[start:])
                del metric.results[start:]
            self.results.append(dict(entries=entries) if name is None else
                                dict(entries=entries, skipped=name,
                                     reason=sample.get('decode_error', '')))

    def evaluate(self, size: int) -> dict:
        """Collect one entry per sample from all ranks and compute on rank 0.

        Args:
            size (int): Length of the dataset; padded samples are cut off.
        """
        results = collect_results(
            self.results, size, self.collect_device,
            tmpdir=self.collect_dir if self.collect_device == 'cpu' else None)
        out: List[Any] = [None]
        if is_main_process():
            try:
                out = [dict(metrics=self.compute_metrics(_to_cpu(results)))]
            except Exception as err:
                # the other ranks wait in the broadcast: tell them, then fail
                broadcast_object_list(
                    [dict(error=f'{type(err).__name__}: {err}')])
                self.results.clear()
                raise
        broadcast_object_list(out)
        self.results.clear()
        if 'error' in out[0]:
            raise RuntimeError('Rank 0 failed to compute the test metrics: '
                               f'{out[0]["error"]}')
        return out[0]['metrics']

    def compute_metrics(self, results: List[dict]) -> Dict[str, Any]:
        """The wrapped metrics over the evaluated videos (``results``: one
        record per sample, in dataset order), and the counts.

        Raises:
            NothingEvaluatedError: Every video was skipped (after writing
                ``out_file``).
            ValueError: Two wrapped metrics report the same key.
        """
        skipped = [r for r in results if 'skipped' in r]
        num_kept = len(results) - len(skipped)
        names = [r['skipped'] for r in skipped]
        if skipped:
            print_log(
                f'Evaluated {num_kept} of {len(results)} videos; skipped '
                f'{len(skipped)} that could not be read:\n' + '\n'.join(
                    f'  {r["skipped"]}: {r["reason"]}' for r in skipped),
                logger='current', level=logging.WARNING)
        if self.out_file:
            os.makedirs(osp.dirname(osp.abspath(self.out_file)), exist_ok=True)
            with open(self.out_file, 'w') as f:
                f.write(''.join(f'{n}\n' for n in names))
            print_log(f'{len(names)} skipped videos listed in '
                      f'{self.out_file}', logger='current')
        if num_kept == 0:
            listed = f' (listed in {self.out_file})' if self.out_file else ''
            raise NothingEvaluatedError(
                f'All {len(results)} videos of the test were skipped as '
                f'unreadable{listed}, so there is no metric to report. Check '
                'the data_prefix and the files: ' + ', '.join(names[:5]) +
                (', ...' if len(names) > 5 else '') + '.')
        metrics: Dict[str, Any] = {}
        for i, metric in enumerate(self.metrics):
            # skipped samples only left entries with the metrics that take them
            part = [e for r in results for e in r['entries'][i]]
            for key, value in metric.compute_metrics(part).items():
                key = f'{metric.prefix}/{key}' if metric.prefix else key
                if key in metrics:
                    raise ValueError(
                        f'Two wrapped metrics both report {key!r}; give '
                        'them different prefixes.')
                metrics[key] = value
        # floats: mmengine's JSON log drops the numpy ints it makes of ints
        for key, value in (('num_evaluated', float(num_kept)),
                           ('num_skipped', float(len(skipped))),
                           ('skipped_videos', names)):
            metrics[f'{self.prefix}/{key}' if self.prefix else key] = value
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
