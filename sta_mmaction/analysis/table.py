"""The tools' tables: one place that calls ``tabulate``."""
from typing import Any, Sequence

from tabulate import tabulate


def format_table(rows: Sequence[Sequence[Any]],
                 headers: Sequence[str]) -> str:
    """A GitHub-markdown table of already formatted cells.

    The cells are printed as given (no number parsing), so ``'0.50'`` keeps
    its two decimals and ``'392 -> 264'`` is not taken for a number.

    Args:
        rows (Sequence[Sequence]): One sequence of cells per row.
        headers (Sequence[str]): Column titles.
    """
    return tabulate([[str(cell) for cell in row] for row in rows],
                    headers=list(headers),
                    tablefmt='github',
                    disable_numparse=True)
