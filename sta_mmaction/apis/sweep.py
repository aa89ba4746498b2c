"""The paper's Figure 4 on one's own data (``tools/test.py --drop-numbers``).

One Runner, so one model load and one data set: each (strategy, r) prunes
the loaded backbone in place (:func:`~sta_mmaction.models.apply_pruning`)
and runs one test epoch, whose hooks report GFLOPs, tokens and the
provenance of that epoch. The backbones are then timed on one view,
interleaved (:func:`~sta_mmaction.analysis.speed.time_forwards`).
"""
import copy
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.utils import mkdir_or_exist

from ..analysis import drop_numbers_of
from ..analysis.speed import hardware_name, time_forwards, with_autocast
from ..analysis.table import format_table
from ..engine import STAPruningHook
from ..engine.run_logging import quiet_repeated_warnings
from ..models import apply_pruning, pruning_of, unwrap
from .testing import runner_of


def sweep_work_dir(work_dir: str) -> str:
    """A default test work dir with its ``_r<N>`` turned into ``_sweep``."""
    head, name = osp.split(work_dir)
    swept = re.sub(r'_r\d+(?=_|$)', '_sweep', name, count=1)
    return osp.join(head, swept if swept != name else name + '_sweep')


def _variants(cfg: Config, drop_numbers: Optional[Sequence[int]],
              strategies: Optional[Sequence[str]]) -> List[tuple]:
    """The (strategy, r) pairs, refused if repeated; r=0 once, with the
    first strategy: it is the unpruned model under every strategy."""
    rs = drop_numbers_of(cfg, drop_numbers)
    names = list(strategies or [pruning_of(cfg).strategy or 'sta'])
    for what, values in (('--drop-numbers', rs), ('--strategies', names)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f'{what} {" ".join(map(str, values))}: '
                             f'{repeated} given more than once; give each '
                             'once.')
    return [(s, r) for i, s in enumerate(names) for r in rs if r or not i]


def _prune(backbone, cfg: Config, variant: tuple):
    """``backbone`` pruned in place as ``cfg`` prunes, with the variant's
    strategy and r."""
    strategy, r = variant
    pruning = pruning_of(cfg)
    return apply_pruning(backbone, pruning._replace(
        settings=dict(pruning.settings, strategy=strategy)), r)


def _prune_run(runner, variant: tuple) -> None:
    """Prune the runner's backbone and any ``STAPruningHook`` (which prunes
    again at ``before_test``) as ``variant`` says."""
    _prune(unwrap(runner.model).backbone, runner.cfg, variant)
    for hook in runner.hooks:
        if isinstance(hook, STAPruningHook):
            hook.strategy, hook.drop_number = variant


def run_sweep(cfg: Config, drop_numbers: Optional[Sequence[int]],
              strategies: Optional[Sequence[str]] = None,
              rounds: int = 3) -> Dict:
    """Test ``cfg`` at every (strategy, r); time each backbone on one view.

    Args:
        cfg (Config): From :func:`~sta_mmaction.apis.configure_test`.
        drop_numbers (Sequence[int], optional): The ``r`` to test. Defaults
            to None, the config's own.
        strategies (Sequence[str], optional): Defaults to None, the
            config's own.
        rounds (int): Interleaved timing rounds per variant. Defaults to 3.

    Returns:
        dict: ``rows`` (one per variant: ``strategy``, ``drop_number``,
        ``gflops_per_view``, ``tokens``, ``acc/*``, ``clips_per_s``, the
        run's ``metrics``; the r=0 row's strategy is None), ``hardware``,
        ``json`` and ``png`` (these three on the main rank only).
    """
    if rounds < 1:
        raise ValueError(f'rounds={rounds} must be >= 1.')
    variants = _variants(cfg, drop_numbers, strategies)
    cfg = copy.deepcopy(cfg)
    rows = []
    with runner_of(cfg) as runner:
        quiet_repeated_warnings(runner.logger)
        for variant in variants:  # a refused setting stops before any test
            _prune_run(runner, variant)
        # Runner.test() with one test epoch per variant: one run, one load
        loop = runner.test_loop
        runner.call_hook('before_run')
        runner.load_or_resume()
        for variant in variants:
            _prune_run(runner, variant)
            metrics = dict(loop.run())
            rows.append(dict(
                strategy=variant[0] if variant[1] else None,
                drop_number=variant[1],
                gflops_per_view=metrics.get('gflops_per_view'),
                tokens=metrics.get('tokens'), metrics=metrics,
                **{k: v for k, v in metrics.items() if k.startswith('acc/')}))
        runner.call_hook('after_run')
        summary = dict(rows=rows, work_dir=runner.work_dir)
        # inside the process group, which is closed on leaving
        if is_main_process():
            summary.update(_time(runner, variants, rows, rounds))
            _write(summary)
    return summary


def _time(runner, variants: List[tuple], rows: List[Dict],
          rounds: int) -> Dict:
    """Clips (views) per second of each variant's backbone, interleaved."""
    backbone = unwrap(runner.model).backbone
    shared = {id(t): t for t in [*backbone.parameters(), *backbone.buffers()]}
    amp = (runner.cfg.get('test_cfg') or {}).get('amp')
    device = next(backbone.parameters()).device
    forwards = {}
    for strategy, r in variants:
        # twins sharing the weights (deepcopy's memo): no second copy
        twin = _prune(copy.deepcopy(backbone, dict(shared)), runner.cfg,
                      (strategy, r)).eval()
        forwards[f'{strategy} r={r}'] = with_autocast(twin, device, amp)
    shape = rows[0]['metrics'].get('view_shape')
    view = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    # on a CPU, process time: other processes' load does not count
    cpu = device.type == 'cpu'
    times = time_forwards(forwards, view.to(device), rounds, cpu_time=cpu)
    for row, label in zip(rows, forwards):
        row['clips_per_s'] = 1 / times[label].median
    return dict(hardware=hardware_name(device), timing_rounds=rounds,
                view_shape=shape, amp=amp,
                clock='process CPU time' if cpu else 'synchronised wall clock')


def _write(summary: Dict) -> None:
    """``sweep.json`` and ``sweep.png`` (top-1 against GFLOPs)."""
    from ..visualization.sweep_plot import plot_sweep
    work_dir = summary['work_dir']
    mkdir_or_exist(work_dir)
    summary['json'] = osp.join(work_dir, 'sweep.json')
    summary['png'] = plot_sweep(summary['rows'],
                                osp.join(work_dir, 'sweep.png'),
                                _provenance(summary['rows'][0]['metrics']))
    with open(summary['json'], 'w') as f:
        json.dump(summary, f, indent=2, default=str)


def _provenance(metrics: Dict) -> str:
    """One line on what the numbers come from."""
    config = osp.basename(str(metrics.get('config')))
    checkpoint = osp.basename(str(metrics.get('checkpoint')))
    return (f'{config}, {checkpoint}, {metrics.get("num_evaluated")} videos'
            f' x {metrics.get("views_per_video")} views')


def format_sweep(summary: Dict) -> str:
    """The sweep's table, and where its JSON and plot are."""
    table = format_table(
        [[row['drop_number'], row['strategy'] or 'none (unpruned)',
          f'{row["gflops_per_view"]:.2f}',
          ' -> '.join(str(n) for n in row['tokens'] or []),
          f'{row["acc/top1"]:.4f}', f'{row["acc/top5"]:.4f}',
          f'{row.get("clips_per_s", float("nan")):.2f}']
         for row in summary['rows']],
        headers=['r', 'strategy', 'GFLOPs/view', 'tokens', 'top-1', 'top-5',
                 'clips/s'])
    return '\n'.join([
        f'Sweep on {_provenance(summary["rows"][0]["metrics"])}; clips/s: '
        f'backbone forwards of one {tuple(summary["view_shape"][1:])} view '
        f'per second of {summary["clock"]}, median of '
        f'{summary["timing_rounds"]} interleaved rounds on '
        f'{summary["hardware"]}', table,
        f'sweep JSON: {summary["json"]}', f'plot: {summary["png"]}'])
