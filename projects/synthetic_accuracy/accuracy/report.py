"""The accuracy benchmark's summaries: rows with intervals, tables, plots.

Pure functions of the per-clip runs of :mod:`.sweep`; nothing here trains
or tests a model. Every interval is a 95% percentile bootstrap over the
test clips (:mod:`.intervals`); a difference between two strategies is
paired (the same clips under both) and is stated as a win only when its
interval excludes zero.
"""
import textwrap
from typing import Dict, List, Optional, Sequence

import numpy as np

from .evidence import BRACKETS
from .intervals import mean_interval, paired_interval, verdict

#: Models of the benchmark, in table order.
MODELS = ('scratch', 'pretrained')

#: The strategy every other one is compared with, clip by clip: the
#: baseline two independent studies found hard to beat on real video.
BASELINE = 'random'

#: What the pooled-feature cosine can and cannot say.
COSINE_CAVEAT = (
    'The pooled-feature cosine (pruned vs unpruned backbone output, mean '
    'over clips) favours reductions whose pooled mean is unbiased (a random '
    'subset estimates the full mean) or sum-conserving (size-weighted '
    'merging, as ToMe), whatever evidence they lose: read it as "how little '
    'the head\'s input moved", not as retained evidence.')


def _per_clip(run: Dict, key: str) -> Optional[np.ndarray]:
    """A run's per-clip values of ``key`` (0/1 correctness for preds)."""
    if key in ('pred', 'probe_pred'):
        if run.get(key) is None:
            return None
        return (np.asarray(run[key]) == np.asarray(run['labels'])).astype(
            np.float64)
    if run.get(key) is None:
        return None
    return np.asarray(run[key], dtype=np.float64)


def _seed_mean(runs: Sequence[Dict], key: str) -> Optional[np.ndarray]:
    """Per-clip values averaged over the runs (seeds) of one point."""
    values = [_per_clip(x, key) for x in runs]
    if any(v is None for v in values) or not values:
        return None
    return np.mean(values, axis=0)


def summarise(runs: List[Dict], seed: int = 0) -> List[Dict]:
    """One row per (set, model, variant, r), with intervals.

    Seeds of ``'random'`` are averaged clip by clip. Skipped points give a
    row with ``skipped`` set and nothing else measured.

    Args:
        runs (list[dict]): :func:`.sweep.sweep_split` runs, each with ``set``
            and ``model`` added.
        seed (int): Seed of the bootstrap. Defaults to 0.

    Returns:
        list[dict]: Rows with ``top1``, ``probe`` (or None), ``evidence``
        (per prune point, or None) and ``evidence_last`` as interval dicts,
        ``cosine`` (mean), ``gflops``, ``tokens``, ``seeds`` and the paired
        differences ``vs_random`` and ``vs_sta`` (``top1``, ``probe``,
        ``evidence_last``; each an interval dict or None).
    """
    groups: Dict[tuple, List[Dict]] = {}
    for x in runs:
        groups.setdefault((x['set'], x['model'], x['variant'], x['r']),
                          []).append(x)
    clips: Dict[tuple, Dict[str, Optional[np.ndarray]]] = {}
    rows = []
    for key, mine in groups.items():
        done = [x for x in mine if not x.get('skipped')]
        row = dict(zip(('set', 'model', 'variant', 'r'), key))
        if not done:
            rows.append(dict(row, skipped=mine[0]['skipped']))
            continue
        values = {k: _seed_mean(done, k) for k in ('pred', 'probe_pred',
                                                   'cosine')}
        evidence = None
        if done[0].get('evidence') is not None:
            evidence = np.mean([np.asarray(x['evidence'], np.float64)
                                for x in done], axis=0)  # (N, P)
        values['evidence_last'] = None if evidence is None else \
            evidence[:, -1]
        clips[key] = values
        row.update(
            skipped=None,
            seeds=len(done),
            gflops=done[0]['gflops'],
            tokens=done[0]['tokens'],
            top1=mean_interval(values['pred'], seed=seed),
            probe=None if values['probe_pred'] is None else mean_interval(
                values['probe_pred'], seed=seed),
            cosine=float(values['cosine'].mean()),
            evidence=None if evidence is None else [
                _evidence_interval(evidence[:, i], seed)
                for i in range(evidence.shape[1])
            ],
            evidence_last=None if evidence is None else _evidence_interval(
                evidence[:, -1], seed))
        rows.append(row)
    for row in rows:
        if row.get('skipped'):
            continue
        key = (row['set'], row['model'], row['variant'], row['r'])
        for other in (BASELINE, 'sta'):
            ref = clips.get(key[:2] + (other, row['r']))
            mine = clips[key]
            row[f'vs_{other}'] = None if ref is None or \
                row['variant'] == other or row['r'] == 0 else {
                    k: _paired(mine[k], ref[k], seed)
                    for k in ('pred', 'probe_pred', 'evidence_last')
                }
    return rows


def _evidence_interval(values: np.ndarray, seed: int) -> Optional[Dict]:
    """Interval over the clips that have evidence tokens (not NaN)."""
    values = values[~np.isnan(values)]
    return mean_interval(values, seed=seed) if len(values) else None


def _paired(a: Optional[np.ndarray], b: Optional[np.ndarray],
            seed: int) -> Optional[Dict]:
    if a is None or b is None:
        return None
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        return None
    return paired_interval(a[keep], b[keep], seed=seed)


#: The paired metric -> its name in the statements.
METRIC_NAMES = {
    'pred': 'top-1 (fixed head)',
    'probe_pred': 'top-1 (refitted probe)',
    'evidence_last': 'evidence kept after the last prune point',
}


def statements(rows: List[Dict], headline: Sequence[int]) -> List[str]:
    """What the paired intervals support, one line per separated pair.

    Every strategy against :data:`BASELINE` and against ``'sta'``, for
    each metric of :data:`METRIC_NAMES` (the brackets are read from the
    tables); a pair whose interval contains zero is not stated, and a
    budget where nothing separates says so.
    """
    lines = []
    for set_kind, model in dict.fromkeys((x['set'], x['model'])
                                         for x in rows):
        mine = [x for x in rows if (x['set'], x['model']) == (set_kind, model)
                and not x.get('skipped') and x['r'] > 0]
        for r in sorted({x['r'] for x in mine}):
            label = '' if r in headline else ' (stress test)'
            said = []
            for x in (y for y in mine
                      if y['r'] == r and y['variant'] not in BRACKETS):
                for other in (BASELINE, 'sta'):
                    diffs = x.get(f'vs_{other}') or {}
                    if other == 'sta' and x['variant'] == BASELINE:
                        continue  # stated once, as sta against random
                    for metric, name in METRIC_NAMES.items():
                        d = diffs.get(metric)
                        if d is None:
                            continue
                        v = verdict(d, x['variant'], other)
                        if v:
                            said.append(f'{v} in {name}: '
                                        f'{_signed(d)} points')
            head = f'{set_kind}/{model}, r={r}{label}'
            if said:
                lines += [f'{head}: {s}' for s in said]
            else:
                lines.append(f'{head}: no paired difference against '
                             f'{BASELINE} or sta excludes zero.')
    return lines


def verdict_grid(rows: List[Dict], drop_numbers: Sequence[int],
                 against: str) -> List[str]:
    """Per strategy and r: separated above (+), below (-) or not (=)
    ``against``, in top-1 / probe top-1 / evidence kept."""

    def cell(x):
        diffs = x.get(f'vs_{against}')
        if not diffs:
            return '-'
        marks = []
        for metric in METRIC_NAMES:
            d = diffs.get(metric)
            v = None if d is None else verdict(d, 'a', 'b')
            marks.append('n/a' if d is None else
                         {None: '=', 'a > b': '+', 'a < b': '-'}[v])
        return ' / '.join(marks)

    shown = [x for x in rows
             if x['variant'] not in BRACKETS and x['variant'] != against]
    return [f'Against {against}, clip by clip: + separated above, - '
            'below, = not separated; top-1 / probe top-1 / evidence '
            'kept:', ''] + _grid(shown, drop_numbers, cell)


def _pct(x: Optional[Dict], digits: int = 1) -> str:
    if x is None:
        return '-'
    return (f'{100 * x["mean"]:.{digits}f} [{100 * x["low"]:.{digits}f}, '
            f'{100 * x["high"]:.{digits}f}]')


def _signed(x: Optional[Dict]) -> str:
    if x is None:
        return '-'
    return (f'{100 * x["mean"]:+.1f} [{100 * x["low"]:+.1f}, '
            f'{100 * x["high"]:+.1f}]')


def _grid(rows: List[Dict], drop_numbers: Sequence[int], cell) -> List[str]:
    """A table: one row per variant, one column per r."""
    variants = list(dict.fromkeys(x['variant'] for x in rows
                                  if x['r'] > 0))
    at = {(x['variant'], x['r']): x for x in rows}
    ref = {}  # the GFLOPs in the head are sta's (others differ slightly)
    for x in sorted((x for x in rows if not x.get('skipped')),
                    key=lambda x: x['variant'] != 'sta'):
        ref.setdefault(x['r'], x)
    head = ['strategy'] + [
        f'r={r} ({ref[r]["gflops"]:.3f} GFLOPs)' if r in ref else f'r={r}'
        for r in drop_numbers
    ]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for v in variants:
        values = []
        for r in drop_numbers:
            x = at.get((v, r))
            if x is None:
                values.append('-')
            elif x.get('skipped'):
                values.append('skipped')
            else:
                values.append(cell(x))
        lines.append('| ' + ' | '.join([v] + values) + ' |')
    return lines


def set_tables(rows: List[Dict], drop_numbers: Sequence[int],
               compact: bool = False) -> List[str]:
    """The tables of one set and model at ``drop_numbers``.

    ``compact`` leaves out the paired differences' numbers and the cosine
    (the README shows the verdicts instead).
    """
    shown = [x for x in rows if x['r'] in drop_numbers]
    lines = ['Top-1 (%), fixed head, [95% interval]:', '']
    lines += _grid(rows, drop_numbers, lambda x: _pct(x['top1']))
    if not compact:
        lines += ['', f'Top-1 against {BASELINE} on the same clips (points, '
                  'paired [95% interval]; **bold** where separated: the '
                  'interval excludes zero and McNemar\'s p < 0.05):', '']
        lines += _grid(rows, drop_numbers,
                       lambda x: _bold(x, 'vs_' + BASELINE, 'pred'))
    if any(x.get('probe') for x in shown):
        lines += ['', 'Top-1 (%) of a linear probe refitted on the '
                  'training clips\' features under the same reduction:', '']
        lines += _grid(rows, drop_numbers, lambda x: _pct(x['probe']))
        if not compact:
            lines += ['', f'Probe top-1 against {BASELINE} (paired):', '']
            lines += _grid(
                rows, drop_numbers,
                lambda x: _bold(x, 'vs_' + BASELINE, 'probe_pred'))
    if any(x.get('evidence') for x in shown):
        lines += ['', 'Evidence tokens kept (%) after prune points 1 / 2 / 3 '
                  '(last: [95% interval]):', '']
        lines += _grid(rows, drop_numbers, _evidence_cell)
    if not compact:
        lines += ['', 'Pooled-feature cosine to the unpruned model (see the '
                  'caveat above):', '']
        lines += _grid(rows, drop_numbers, lambda x: f'{x["cosine"]:.3f}')
    return lines


def _bold(x: Dict, against: str, metric: str) -> str:
    d = (x.get(against) or {}).get(metric)
    if d is None:
        return '-'
    text = _signed(d)
    return f'**{text}**' if verdict(d, 'a', 'b') else text


def _evidence_cell(x: Dict) -> str:
    if not x.get('evidence'):
        return '-'
    shares = [f'{100 * e["mean"]:.0f}' for e in x['evidence'][:-1]]
    return ' / '.join(shares + [_pct(x['evidence_last'], 0)])


def finetune_table(finetune: Sequence[Dict]) -> List[str]:
    """Fine-tuned models (rows) tested at r with STA / random and at r=0."""
    if not finetune:
        return []
    tests = list(dict.fromkeys(t for x in finetune for t in x['tests']))
    lines = ['| set | fine-tuned | ' + ' | '.join(
        f'tested {t} (%)' for t in tests) + ' |',
        '|---|---|' + '---|' * len(tests)]
    for x in finetune:
        cells = [_pct(x['tests'].get(t)) for t in tests]
        lines.append(f'| {x["set"]} | {x["label"]} | ' + ' | '.join(cells) +
                     ' |')
    return lines


def finetune_statements(finetune: Sequence[Dict]) -> List[str]:
    """Paired differences of each fine-tuning against its controls."""
    lines = []
    for x in finetune:
        for test, diffs in x.get('vs', {}).items():
            for control, d in diffs.items():
                v = verdict(d, x['label'], control)
                lines.append(
                    f'{x["set"]}, tested {test}: {x["label"]} minus '
                    f'{control}: {_signed(d)} points' +
                    (f' ({v})' if v else ' (not separated)'))
    return lines


def markdown(rows: List[Dict], info: Dict, headline: Sequence[int],
             stress: Sequence[int], finetune: Sequence[Dict] = (),
             trainings: Sequence[Dict] = (),
             gates: Sequence[Dict] = ()) -> str:
    """The whole results page (``results.md``).

    Args:
        rows (list[dict]): :func:`summarise` rows.
        info (dict): ``model``, ``view``, ``hardware``, ``command``,
            ``wall_minutes``, ``estimate_minutes``, ``load`` and ``sets``
            (set -> description).
        headline (Sequence[int]): The paper-range r.
        stress (Sequence[int]): The larger r.
        finetune (Sequence[dict]): Fine-tuning results. Defaults to none.
        trainings (Sequence[dict]): Training stages. Defaults to none.
        gates (Sequence[dict]): Per set and model, the unpruned top-1 and
            whether it cleared the bar for comparisons. Defaults to none.
    """
    lines = [
        '# Token-reduction strategies at equal budgets, on generated clips',
        '', f'{info["model"]}; {info["view"]}; {info["hardware"]}.', '',
        f'Command: `{info["command"]}`; wall time '
        f'{info["wall_minutes"]:.1f} min (estimated '
        f'{info["estimate_minutes"]:.1f} at the start); load average '
        f'{info["load"]["start"]} at the start, {info["load"]["end"]} at '
        'the end. Measured wall minutes per part: ' + ', '.join(
            f'{k} {v:.1f}' for k, v in info.get('stage_minutes', {}).items())
        + '.', '',
        'Intervals: 95% percentile bootstrap over the test clips (2000 '
        'resamples); a difference is paired (the same clips under both) '
        'and counts as a win only where its interval excludes zero and, for '
        'top-1, the exact McNemar test on the clips where the two differ '
        'gives p < 0.05. Neither is corrected for the number of '
        'comparisons. '
        'Evidence: the share of the tokens that the generator\'s object '
        'masks cover (at least 10% of the token\'s tube), still present '
        'after each prune point; for merging strategies a token merged '
        'into another counts as gone. keep_evidence / drop_evidence: '
        'oracles that keep (drop) the most covered tokens at the same '
        'token counts, the brackets every strategy should sit between. '
        '\'oracle\' is the library\'s speed reference (each group keeps '
        'its first positions).', '', COSINE_CAVEAT, ''
    ]
    if info.get('skipped'):
        lines += ['Skipped: ' + '; '.join(info['skipped']), '']
    if trainings:
        lines += [
            '## Training', '', '| sets | model | stage | epochs | minutes | '
            'mean loss, first -> last epoch | val top-1 (%) |',
            '|---|---|---|---|---|---|---|'
        ]
        for t in trainings:
            val = t.get('val', {}).get('acc/top1')
            val = '-' if val is None else f'{100 * val:.1f}'
            loss = t.get('loss') or []
            loss = f'{loss[0]} -> {loss[1]}' if loss else '-'
            lines.append(f'| {t["set"]} | {t["model"]} | {t["stage"]} | '
                         f'{t["epochs"]} | {t["train_seconds"] / 60:.1f} | '
                         f'{loss} | {val} |')
        lines.append('')
    for g in gates:
        lines.append(
            f'- {g["set"]}/{g["model"]}: unpruned test top-1 '
            f'{_pct(g["top1"])}% (chance {100 * g["chance"]:.1f}%); '
            + ('compared.' if g['compared'] else
               f'NOT compared: the lower bound is under '
               f'{100 * g["bar"]:.1f}%.'))
    if gates:
        lines.append('')
    for set_kind, model in dict.fromkeys((x['set'], x['model'])
                                         for x in rows):
        mine = [x for x in rows if (x['set'], x['model']) == (set_kind, model)]
        lines += [f'## {set_kind} / {model}', '', info['sets'][set_kind], '']
        base = next(x for x in mine if x['r'] == 0)
        lines += [f'Unpruned: top-1 {_pct(base["top1"])}%'
                  + (f', probe {_pct(base["probe"])}%' if base.get('probe')
                     else '') + f', {base["gflops"]:.3f} GFLOPs.', '']
        lines += ['### Headline budgets (the paper\'s kept fractions)', '']
        lines += set_tables(mine, headline)
        if stress:
            lines += ['', '### Stress test (beyond the paper\'s budgets)',
                      '']
            lines += set_tables(mine, stress)
        lines.append('')
    said = statements(rows, headline)
    lines += ['## What the paired intervals support', '']
    lines += [f'- {s}' for s in said] or ['- nothing was compared.']
    lines.append('')
    if finetune:
        lines += [
            '## Fine-tuning controls', '',
            'From the r=0 model, the same epochs and learning rate each: '
            'STA on at r, random at r, and r=0; each tested with STA and '
            'random at r and unpruned. [95% intervals]', ''
        ]
        lines += finetune_table(finetune)
        lines += ['', 'Paired differences of each fine-tuning against the '
                  'controls, on the same clips:', '']
        lines += [f'- {s}' for s in finetune_statements(finetune)]
        lines.append('')
    return '\n'.join(lines) + '\n'


#: Variant -> (colour, marker) of its curves; others get matplotlib's.
STYLES = dict(
    sta=('tab:red', 'o'),
    random=('tab:gray', 's'),
    temporal=('tab:blue', '^'),
    semantic=('tab:green', 'v'),
    tome=('tab:purple', 'D'),
    oracle=('tab:olive', 'x'),
    keep_evidence=('black', '^'),
    drop_evidence=('black', 'v'))


def plot(rows: List[Dict], out_file: str, title: str,
         stress: Sequence[int] = ()) -> str:
    """Top-1 and evidence kept against GFLOPs, with 95% intervals.

    Args:
        rows (list[dict]): :func:`summarise` rows of one set and model.
        out_file (str): PNG to write.
        title (str): The figure's title.
        stress (Sequence[int]): r drawn as the stress test (hollow).
            Defaults to none.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
    base = next((x for x in rows if x['r'] == 0 and not x.get('skipped')),
                None)
    metrics = (('top1', 'top-1, fixed head (%)'),
               ('evidence_last', 'evidence tokens kept after the last '
                'prune point (%)'))
    for ax, (key, label) in zip(axes, metrics):
        for v in dict.fromkeys(x['variant'] for x in rows if x['r'] > 0):
            pts = sorted((x for x in rows if x['variant'] == v
                          and not x.get('skipped') and x.get(key)),
                         key=lambda x: x['gflops'])
            if base is not None and key == 'top1':
                pts = [base] + pts
            if not pts:
                continue
            colour, marker = STYLES.get(v, (None, 'o'))
            mean = np.array([100 * x[key]['mean'] for x in pts])
            err = np.array([[100 * (x[key]['mean'] - x[key]['low']),
                             100 * (x[key]['high'] - x[key]['mean'])]
                            for x in pts]).T
            gflops = [x['gflops'] for x in pts]
            line = ax.errorbar(gflops, mean, yerr=err, color=colour,
                               marker=marker, markersize=4, capsize=3,
                               linewidth=2 if v == 'sta' else 1.1,
                               linestyle='--' if v in (
                                   'keep_evidence', 'drop_evidence') else '-',
                               label=v)
            hollow = [i for i, x in enumerate(pts) if x['r'] in stress]
            if hollow:
                ax.scatter([gflops[i] for i in hollow], mean[hollow],
                           s=50, facecolors='white',
                           edgecolors=line[0].get_color(), zorder=3)
        ax.set_xlabel('GFLOPs per view (backbone, fvcore)')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2, title='strategy')
    fig.suptitle(textwrap.fill(
        title + ('; hollow: stress test' if stress else ''), 120),
        fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file)
    plt.close(fig)
    return out_file


#: The markers between which ``--update-readme`` writes the results.
README_START = '<!-- results:start (written by accuracy_benchmark.py ' \
    '--update-readme) -->'
README_END = '<!-- results:end -->'


def readme_section(rows: List[Dict], info: Dict, headline: Sequence[int],
                   finetune: Sequence[Dict], gates: Sequence[Dict]) -> str:
    """The README's results: headline tables, statements, controls."""
    lines = [
        f'Printed by `{info["command"]}` ({info["wall_minutes"]:.1f} min on '
        f'{info["hardware"]}; load average {info["load"]["start"]} at the '
        f'start, {info["load"]["end"]} at the end). {info["model"]}; '
        f'{info["view"]}. Intervals: 95% bootstrap over the test clips; '
        'separated: the paired interval excludes zero and, for top-1, '
        'McNemar\'s p < 0.05. Every table, the stress test (r='
        f'{", ".join(map(str, info["stress"])) or "none"}), the paired '
        'numbers and the cosine (which favours unbiased and sum-conserving '
        'reductions) are in `results.md`.', ''
    ]
    for g in gates:
        lines.append(
            f'- {g["set"]}/{g["model"]}: unpruned test top-1 '
            f'{_pct(g["top1"])}% (chance {100 * g["chance"]:.1f}%), '
            + ('compared.' if g['compared'] else 'not compared.'))
    lines.append('')
    for set_kind, model in dict.fromkeys((x['set'], x['model'])
                                         for x in rows):
        mine = [x for x in rows if (x['set'], x['model']) == (set_kind, model)]
        lines += [f'**{set_kind} / {model}**', '']
        lines += set_tables(mine, headline, compact=True)
        for against in (BASELINE, 'sta'):
            lines.append('')
            lines += verdict_grid(mine, headline, against)
        lines.append('')
    # evidence kept separates almost everywhere (the grids' third mark);
    # the list here is what bears on accuracy
    said = [s for s in statements(rows, headline)
            if 'stress' not in s and 'evidence kept' not in s]
    lines += ['**What the paired intervals support in top-1** (fixed head '
              'or refitted probe) at the headline budgets, against random '
              'and against sta; every other such comparison is not '
              'separated in top-1. The '
              'evidence-kept separations are the third mark of the grids '
              'above, listed with their intervals in `results.md`, as is '
              'the stress test:', '']
    lines += [f'- {s}' for s in said]
    if finetune:
        lines += ['', '**Fine-tuning controls**', '']
        lines += finetune_table(finetune)
        lines.append('')
        lines += [f'- {s}' for s in finetune_statements(finetune)]
    return '\n'.join(lines) + '\n'


def replace_section(text: str, section: str) -> str:
    """``text`` with what lies between the README markers replaced.

    Raises:
        ValueError: The markers are missing or out of order.
    """
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f'the README has no {README_START!r} ... '
                         f'{README_END!r} section to fill.')
    return (text[:start + len(README_START)] + '\n\n' + section + '\n' +
            text[end:])
