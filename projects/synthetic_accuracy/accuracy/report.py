"""The accuracy benchmark's summaries: rows, winners, Markdown and plots.

Pure functions of the runs that :mod:`sta_mmaction.apis.accuracy_sweep`
returns; nothing here trains or tests a model.
"""
import textwrap
from typing import Dict, List, Sequence

import torch

#: Column of the table -> (strategy, prop_attn). ``tome`` is ToMe with
#: proportional attention (the backbone's default), ``tome_noprop`` without.
VARIANTS = {
    'sta': ('sta', True),
    'random': ('random', True),
    'temporal': ('temporal', True),
    'semantic': ('semantic', True),
    'tome': ('tome', True),
    'tome_noprop': ('tome', False),
}

#: Models of the benchmark, in table order.
MODELS = ('pretrained', 'scratch')


def pooled_cosine(features: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over clips of the cosine between two (N, C) pooled features.

    Args:
        features (Tensor): (N, C) the pruned backbone's outputs.
        reference (Tensor): (N, C) the unpruned backbone's outputs for the
            same N clips, in the same order.
    """
    if features.shape != reference.shape or features.dim() != 2:
        raise ValueError(f'pooled_cosine needs two (N, C) features of one '
                         f'shape, got {tuple(features.shape)} and '
                         f'{tuple(reference.shape)}.')
    cos = torch.nn.functional.cosine_similarity(
        features.double(), reference.double(), dim=1)  # (N, )
    return float(cos.mean())


def _spread(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    return float(torch.tensor(values, dtype=torch.float64).std())


def summarise(runs: List[Dict], variants: Sequence[str],
              drop_numbers: Sequence[int]) -> List[Dict]:
    """One row per (set, model, variant, r), seeds of ``'random'`` averaged.

    The ``r=0`` run of a set and model is the unpruned model, shared by
    every variant.

    Args:
        runs (list[dict]): Test runs, each with ``set``, ``model``,
            ``variant``, ``r``, ``top1``, ``mean1``, ``cosine``, ``gflops``
            and ``tokens``.
        variants (Sequence[str]): Columns, keys of :data:`VARIANTS`.
        drop_numbers (Sequence[int]): The swept ``r``.

    Returns:
        list[dict]: Rows with the means and standard deviations over the
        seeds (``top1_std``, ``cosine_std``; 0 for one run) and ``runs``.
    """
    rows = []
    pairs = list(dict.fromkeys((x['set'], x['model']) for x in runs))
    for set_kind, model in pairs:
        mine = [x for x in runs if (x['set'], x['model']) == (set_kind, model)]
        base = [x for x in mine if x['r'] == 0]
        for variant in variants:
            for r in drop_numbers:
                hits = base if r == 0 else [
                    x for x in mine if x['variant'] == variant and x['r'] == r
                ]
                if not hits:
                    continue
                top1 = [x['top1'] for x in hits]
                cosine = [x['cosine'] for x in hits]
                rows.append(
                    dict(
                        set=set_kind,
                        model=model,
                        variant=variant,
                        r=r,
                        tokens=hits[0]['tokens'],
                        gflops=hits[0]['gflops'],
                        top1=sum(top1) / len(top1),
                        top1_std=_spread(top1),
                        cosine=sum(cosine) / len(cosine),
                        cosine_std=_spread(cosine),
                        mean1=sum(x['mean1'] for x in hits) / len(hits),
                        runs=len(hits)))
    return rows


def winners(rows: List[Dict]) -> Dict[str, Dict[str, Dict[int, List[str]]]]:
    """Variants with the best top-1 at each ``r > 0`` (ties kept).

    Returns:
        dict: set -> model -> r -> the winning variants.
    """
    out: Dict = {}
    for x in rows:
        if x['r'] == 0:
            continue
        at = [
            y for y in rows
            if (y['set'], y['model'], y['r']) == (x['set'], x['model'], x['r'])
        ]
        best = max(y['top1'] for y in at)
        out.setdefault(x['set'], {}).setdefault(x['model'], {})[x['r']] = [
            y['variant'] for y in at if y['top1'] >= best - 1e-9
        ]
    return out


def prop_attn_effect(rows: List[Dict]) -> List[Dict]:
    """ToMe with proportional attention against without, per set and model.

    Returns:
        list[dict]: Per (set, model) with both ``tome`` and ``tome_noprop``
        rows at ``r > 0``: ``set``, ``model``, ``on`` / ``off`` (mean top-1
        over those r), ``cosine_on`` / ``cosine_off`` (mean cosine) and
        ``better``, ``worse``, ``tied`` (how many r have ``on`` above, below
        or level with ``off``).
    """
    out = []
    for set_kind, model in dict.fromkeys((x['set'], x['model'])
                                         for x in rows):
        cell = {(x['variant'], x['r']): x for x in rows
                if (x['set'], x['model']) == (set_kind, model) and x['r']}
        pairs = [(cell['tome', r], cell['tome_noprop', r]) for v, r in cell
                 if v == 'tome' and ('tome_noprop', r) in cell]
        if not pairs:
            continue
        diff = [on['top1'] - off['top1'] for on, off in pairs]
        out.append(
            dict(
                set=set_kind,
                model=model,
                on=sum(on['top1'] for on, _ in pairs) / len(pairs),
                off=sum(off['top1'] for _, off in pairs) / len(pairs),
                cosine_on=sum(on['cosine'] for on, _ in pairs) / len(pairs),
                cosine_off=sum(off['cosine']
                               for _, off in pairs) / len(pairs),
                better=sum(d > 1e-9 for d in diff),
                worse=sum(d < -1e-9 for d in diff),
                tied=sum(abs(d) <= 1e-9 for d in diff)))
    return out


def _table(rows: List[Dict], variants: Sequence[str], key: str,
           best: Dict[int, List[str]]) -> List[str]:
    """A Markdown table of ``key`` (``'top1'`` or ``'cosine'``): rows r."""
    cell = {(x['variant'], x['r']): x for x in rows}
    drop_numbers = sorted({x['r'] for x in rows})
    shown = [v for v in variants if any(x['variant'] == v for x in rows)]
    head = ['r', 'tokens', 'GFLOPs'] + shown
    if key == 'top1':
        head.append('best')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    scale, digits = (100, 1) if key == 'top1' else (1, 3)
    for r in drop_numbers:
        ref = next(x for x in rows if x['r'] == r)
        values = []
        for v in shown:
            x = cell.get((v, r))
            if x is None:
                values.append('-')
                continue
            text = f'{scale * x[key]:.{digits}f}'
            if x['runs'] > 1 and r:
                text += f' ± {scale * x[key + "_std"]:.{digits}f}'
            if key == 'top1' and r and v in best.get(r, []):
                text = f'**{text}**'
            values.append(text)
        tokens = ' / '.join(str(t) for t in ref['tokens'][1:]) or '-'
        line = [str(r), tokens, f'{ref["gflops"]:.3f}'] + values
        if key == 'top1':
            line.append(', '.join(best.get(r, ['-'])))
        lines.append('| ' + ' | '.join(line) + ' |')
    return lines


def markdown(rows: List[Dict], variants: Sequence[str], info: Dict,
             finetune: Sequence[Dict] = (),
             trainings: Sequence[Dict] = ()) -> str:
    """The results as Markdown: per set and model, top-1 and cosine tables.

    Args:
        rows (list[dict]): :func:`summarise` rows.
        variants (Sequence[str]): Columns, keys of :data:`VARIANTS`.
        info (dict): ``model``, ``view``, ``hardware``, ``random_seeds``,
            ``command``, ``wall_minutes``, ``estimate_minutes`` and
            ``reused_minutes`` of the run, and ``sets``, set -> a
            description.
        finetune (Sequence[dict]): STA fine-tuning results, each with
            ``set``, ``model``, ``r``, ``epochs``, ``before``, ``after``,
            ``after_r0`` and ``speed_ratio``. Defaults to none.
        trainings (Sequence[dict]): Training stages, each with ``set``,
            ``model``, ``stage``, ``epochs``, ``train_seconds``, ``val``
            and ``loss`` (first and last epoch's mean); pre-training stages
            also ``reference`` (``pretrain_reference``'s result).
            Defaults to none.
    """
    best = winners(rows)
    lines = [
        '# Accuracy against GFLOPs per view: token-reduction strategies', '',
        f'{info["model"]}; {info["view"]}; {info["hardware"]}. r=0 is the '
        'unpruned model, shared by every strategy. '
        f"'random' is the mean ± std over seeds {info['random_seeds']}; "
        "'tome' merges with proportional attention, 'tome_noprop' "
        'without. Cosine: between the pruned and the unpruned pooled '
        'feature (the backbone output before the head), mean over test '
        'clips.', '', f'Command: `{info["command"]}`; wall time '
        f'{info["wall_minutes"]:.1f} min (estimated '
        f'{info["estimate_minutes"]:.1f} at the start), plus '
        f'{info["reused_minutes"]:.1f} min that the stages reused from '
        'earlier runs took then.', ''
    ]
    if trainings:
        lines += [
            '## Training', '', '| set | model | stage | epochs | minutes | '
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
        refs = [t for t in trainings if t.get('reference')]
        if refs:
            lines += [
                'Pre-training against two references: masked-tube MSE on '
                'training clips, the same masks for all three.', '',
                '| set | model | clips | pre-trained model | visible tubes\' '
                'mean colour | zeros |', '|---|---|---|---|---|---|'
            ]
            for t in refs:
                ref = t['reference']
                lines.append(f'| {t["set"]} | {t["model"]} | {ref["clips"]} '
                             f'| {ref["model"]} | {ref["visible_mean"]} | '
                             f'{ref["zero"]} |')
            lines.append('')
    for set_kind in dict.fromkeys(x['set'] for x in rows):
        lines += [f'## Set: {set_kind}', '', info['sets'][set_kind], '']
        for model in dict.fromkeys(x['model'] for x in rows
                                   if x['set'] == set_kind):
            mine = [
                x for x in rows if (x['set'], x['model']) == (set_kind, model)
            ]
            mine_best = best.get(set_kind, {}).get(model, {})
            lines += [f'### {set_kind} / {model}: top-1 (%)', '']
            lines += _table(mine, variants, 'top1', mine_best)
            lines += ['', f'### {set_kind} / {model}: pooled-feature cosine',
                      '']
            lines += _table(mine, variants, 'cosine', mine_best)
            lines.append('')
    effect = prop_attn_effect(rows)
    if effect:
        lines += [
            '## ToMe: proportional attention on (tome) or off (tome_noprop)',
            '', 'Means over the swept r > 0.', '',
            '| set | model | top-1 on (%) | top-1 off (%) | cosine on | '
            'cosine off | r where on is better / worse / tied |',
            '|---|---|---|---|---|---|---|'
        ]
        for x in effect:
            lines.append(
                f'| {x["set"]} | {x["model"]} | {100 * x["on"]:.1f} | '
                f'{100 * x["off"]:.1f} | {x["cosine_on"]:.3f} | '
                f'{x["cosine_off"]:.3f} | {x["better"]} / {x["worse"]} / '
                f'{x["tied"]} |')
        lines.append('')
    if finetune:
        lines += [
            '## Fine-tuning with STA on', '',
            'From the fine-tuned r=0 model, a few epochs at r with STA '
            'active in training. Speed ratio: seconds of one training step '
            '(forward, backward, optimiser step; one batch, no decoding) at '
            'r=0 over those at r, the two interleaved in one process.', '',
            '| set | model | r | epochs | top-1 at r before (%) | after (%) '
            '| after, tested at r=0 (%) | step speed-up vs r=0 |',
            '|---|---|---|---|---|---|---|---|'
        ]
        for x in finetune:
            lines.append(
                f'| {x["set"]} | {x["model"]} | {x["r"]} | {x["epochs"]} | '
                f'{100 * x["before"]:.1f} | {100 * x["after"]:.1f} | '
                f'{100 * x["after_r0"]:.1f} | {x["speed_ratio"]:.2f}x |')
    return '\n'.join(lines) + '\n'


#: Variant -> (colour, marker) of its curves.
STYLES = dict(
    sta=('tab:red', 'o'),
    random=('tab:gray', 's'),
    temporal=('tab:blue', '^'),
    semantic=('tab:green', 'v'),
    tome=('tab:purple', 'D'),
    tome_noprop=('tab:pink', 'd'))

#: Model -> line style of its curves.
LINES = dict(pretrained='-', scratch='--')


def plot(rows: List[Dict], variants: Sequence[str], out_file: str,
         title: str) -> str:
    """Top-1 against GFLOPs per view: one curve per variant and model.

    Args:
        rows (list[dict]): :func:`summarise` rows of one set.
        variants (Sequence[str]): Variants to draw.
        out_file (str): PNG to write.
        title (str): The figure's title.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.4), dpi=120)
    for model in dict.fromkeys(x['model'] for x in rows):
        for v in variants:
            pts = sorted((x for x in rows
                          if x['variant'] == v and x['model'] == model),
                         key=lambda x: x['gflops'])
            if not pts:
                continue
            colour, marker = STYLES.get(v, (None, 'o'))
            ax.errorbar([x['gflops'] for x in pts],
                        [100 * x['top1'] for x in pts],
                        yerr=[100 * x['top1_std'] for x in pts],
                        color=colour,
                        marker=marker,
                        markersize=4,
                        linestyle=LINES.get(model, ':'),
                        linewidth=2 if v == 'sta' else 1.2,
                        capsize=3,
                        label=f'{v} ({model})')
    ax.set_xlabel('GFLOPs per view (backbone, fvcore, 1 multiply-add = '
                  '1 FLOP)')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_title(textwrap.fill(title, 100), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, title='strategy (model)')
    fig.tight_layout()
    fig.savefig(out_file)
    plt.close(fig)
    return out_file
