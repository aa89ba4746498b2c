"""ProvenanceHook: every test result says what produced it."""
import os.path as osp
from typing import Any, Dict, Optional

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..models import unwrap
from ..utils.checkpoint import file_sha256

#: ``runtime_info`` prefix under which other parts of a run (the checkpoint
#: check, tools/test.py) leave facts for the provenance record.
PREFIX = 'sta_provenance/'


@HOOKS.register_module()
class ProvenanceHook(Hook):
    """Record what produced a test run's numbers, beside the numbers.

    The record lands in the test metrics (so the JSON log) and the run's
    ``Result:`` and ``Provenance:`` lines: the backbone as it ran
    (``backbone``, ``drop_number``, ``strategy``, ``seed``,
    ``fused_attention``), ``precision`` (the test
    loop's autocast: ``'fp32'``, ``'bf16'`` or ``'fp16'``), ``config``,
    ``checkpoint``, the data (``ann_file``, its ``ann_file_sha256``, 12 hex
    digits, and ``data_prefix``), ``protocol``, ``views_per_video`` (of the
    first batch), ``num_evaluated`` and ``num_skipped``. Anything stored in
    the runtime info under ``'sta_provenance/<key>'`` joins the record as
    ``<key>``.
    """

    # before LoggerHook (BELOW_NORMAL), which writes the metrics JSON
    priority = 'NORMAL'

    def before_test(self, runner) -> None:
        backbone = getattr(unwrap(runner.model), 'backbone', None)
        cfg, loop = runner.cfg, runner.test_loop
        dataset = getattr(runner.test_dataloader, 'dataset', None)
        ann_file = getattr(dataset, 'ann_file', None) or None
        if ann_file and osp.isfile(ann_file):
            ann_file = osp.abspath(ann_file)
        self.record: Dict[str, Any] = dict(
            backbone=type(backbone).__name__,
            drop_number=getattr(backbone, 'drop_number', 0),
            strategy=getattr(backbone, 'strategy', None),
            seed=getattr(backbone, 'seed', None),
            fused_attention=getattr(backbone, 'fused_attention', False),
            precision=getattr(loop, 'amp', None) or (
                'fp16' if getattr(loop, 'fp16', False) else 'fp32'),
            config=osp.abspath(cfg.filename) if cfg.filename else None,
            checkpoint=cfg.get('load_from'),
            ann_file=ann_file,
            ann_file_sha256=file_sha256(ann_file)[:12]
            if ann_file and osp.isfile(ann_file) else None,
            data_prefix=getattr(dataset, 'data_prefix', None),
            protocol=cfg.get('test_protocol', 'config'))
        self.views: Optional[int] = None

    def before_test_iter(self, runner, batch_idx: int,
                         data_batch: Optional[Dict] = None) -> None:
        inputs = (data_batch or {}).get('inputs')
        if self.views is None and inputs is not None and len(inputs):
            self.views = int(inputs[0].shape[0])

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        hub = runner.message_hub
        record = dict(self.record, views_per_video=self.views)
        record.update({
            k[len(PREFIX):]: v
            for k, v in hub.runtime_info.items() if k.startswith(PREFIX)
        })
        metrics = metrics if metrics is not None else {}
        if 'num_evaluated' in metrics:
            # SkippedVideosMetric's counts arrive as floats (mmengine's
            # scalar log drops numpy ints); the record keeps them ints
            record.update(num_evaluated=int(metrics['num_evaluated']),
                          num_skipped=int(metrics['num_skipped']))
        else:
            # without SkippedVideosMetric every video is evaluated or the
            # run has stopped on the one that could not be read
            record.update(num_evaluated=len(runner.test_dataloader.dataset),
                          num_skipped=0)
        for key, value in record.items():
            hub.update_info(f'test/{key}', value)
        metrics.update(record)
        self.metrics = metrics

    def after_test(self, runner) -> None:
        if not is_main_process():
            return
        m = self.metrics
        scores = ', '.join(f'{k}={v:.4f}' for k, v in m.items()
                           if k.startswith('acc/') and isinstance(v, float))
        cost = (f' | {m["gflops_per_view"]:.2f} GFLOPs per view, tokens '
                f'{m.get("tokens") or "n/a"}'
                if 'gflops_per_view' in m else '')
        sha, list_sha = m.get('checkpoint_sha256'), m.get('ann_file_sha256')
        partial = ''
        if m.get('partial_load'):
            partial = (f' (partial load: {len(m.get("random_init_keys", []))}'
                       ' tensors left at random init)')
        prefix = m.get('data_prefix')
        if isinstance(prefix, dict) and len(prefix) == 1:
            prefix = next(iter(prefix.values()))
        print_log(
            f'Result: {scores or "no accuracy metric"}{cost} | '
            f'{int(m["num_evaluated"])} videos evaluated, '
            f'{int(m["num_skipped"])} skipped', logger='current')
        print_log(
            f'Provenance: {m["backbone"]} drop_number={m["drop_number"]} '
            f'strategy={m["strategy"]} seed={m["seed"]}, {m["precision"]}, '
            f'{"fused" if m["fused_attention"] else "explicit"} attention | '
            f'config {m["config"]} | checkpoint {m["checkpoint"]}'
            + (f' (sha256 {sha})' if sha else '') + partial + ' | '
            f'list {m["ann_file"]}' + (f' (sha256 {list_sha})'
                                       if list_sha else '') +
            f', videos {prefix} | {m["views_per_video"]} views per video '
            f'({m["protocol"]} protocol)', logger='current')
