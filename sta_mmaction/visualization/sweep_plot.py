"""Top-1 against GFLOPs per view, one line per strategy (the paper's
Figure 4 axes), from :func:`sta_mmaction.apis.sweep.run_sweep`'s rows."""
import os.path as osp
from typing import Dict, Sequence

from mmengine.utils import mkdir_or_exist


def plot_sweep(rows: Sequence[Dict], out_file: str, title: str = '') -> str:
    """Draw the rows' ``acc/top1`` against ``gflops_per_view``; return the
    PNG path. Each point is labelled with its ``r``.

    Args:
        rows (Sequence[dict]): ``strategy``, ``drop_number``,
            ``gflops_per_view`` and ``acc/top1`` per variant; a row whose
            strategy is None (the unpruned model) starts every line.
        out_file (str): PNG path.
        title (str): Figure title. Defaults to ''.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4))
    shared = [row for row in rows if row['strategy'] is None]
    strategies = [s for s in dict.fromkeys(r['strategy'] for r in rows) if s]
    for strategy in strategies or [None]:
        mine = shared + [r for r in rows if strategy and
                         r['strategy'] == strategy]
        mine.sort(key=lambda r: r['gflops_per_view'])
        xs = [r['gflops_per_view'] for r in mine]
        ys = [100 * r['acc/top1'] for r in mine]
        ax.plot(xs, ys, marker='o', label=strategy or 'unpruned')
        for x, y, row in zip(xs, ys, mine):
            ax.annotate(f'r={row["drop_number"]}', (x, y), fontsize=7,
                        textcoords='offset points', xytext=(3, 3))
    ax.set_xlabel('GFLOPs per view (backbone)')
    ax.set_ylabel('top-1 (%)')
    ax.grid(alpha=0.3)
    ax.legend(title='strategy', fontsize=8)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file
