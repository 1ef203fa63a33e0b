"""The confusion heat-map: rows are the true labels, columns the predicted ones, each cell coloured by its share of
its row (green on the diagonal, red off it), the row's recall at its end and the accuracy in the title.

Shared by the Batches screen (API labelers vs the human test set) and the Eval screen (the model vs the same set).
It is a Rich table inside a Static, so it stays legible in a plain 80x24 tmux with 256 colours.
"""

from __future__ import annotations

from collections.abc import Sequence

from bizsent.core.labels import LABELS
from rich.color import Color, blend_rgb
from rich.color_triplet import ColorTriplet
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

_BASE = ColorTriplet(32, 32, 40)
_RIGHT = ColorTriplet(30, 150, 70)
_WRONG = ColorTriplet(180, 40, 40)
CELL_WIDTH = 7  # "100.0%" and a five-digit count both fit


def _check(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> None:
    if len(matrix) != len(labels) or any(len(row) != len(labels) for row in matrix):
        raise ValueError(f"confusion matrix must be {len(labels)}x{len(labels)} for labels {tuple(labels)}")


def accuracy(matrix: Sequence[Sequence[int]]) -> float | None:
    total = sum(sum(row) for row in matrix)
    return sum(matrix[i][i] for i in range(len(matrix))) / total if total else None


def cell_style(share: float, diagonal: bool) -> Style:
    """Background deepens with the row share; text turns bold white once the cell is dark enough to need it."""
    colour = blend_rgb(_BASE, _RIGHT if diagonal else _WRONG, max(0.0, min(1.0, share)))
    return Style(bgcolor=Color.from_triplet(colour), color="white" if share >= 0.35 else "grey70", bold=share >= 0.35)


def confusion_table(
    matrix: Sequence[Sequence[int]],
    *,
    labels: Sequence[str] = LABELS,
    normalise: bool = False,
    title: str = "",
    recall: bool = True,
) -> Group:
    """Title line, table of `matrix` (rows true, columns predicted), caption; `normalise`: row percentages;
    without `recall` the recall column is left out (two matrices side by side fit 80 columns)."""
    _check(matrix, labels)
    total = sum(sum(row) for row in matrix)
    acc = accuracy(matrix)
    heading = f"accuracy {acc:.1%} (n={total})" if acc is not None else "no labeled posts to compare"
    table = Table(
        box=None,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("true \\ pred", style="bold", no_wrap=True)
    for label in labels:
        table.add_column(label, justify="right", min_width=CELL_WIDTH, no_wrap=True)
    if recall:
        table.add_column("recall", justify="right", min_width=6, no_wrap=True, style="bold")
    for i, (label, row) in enumerate(zip(labels, matrix, strict=True)):
        row_total = sum(row)
        cells: list[Text] = []
        for j, count in enumerate(row):
            share = count / row_total if row_total else 0.0
            shown = f"{share:.1%}" if normalise else str(count)
            cells.append(Text(f" {shown} ".rjust(CELL_WIDTH), style=cell_style(share, i == j)))
        row_recall = f"{row[i] / row_total:.0%}" if row_total else "–"
        table.add_row(label, *cells, *([row_recall] if recall else []))
    # Title and caption sit outside the table: a table's own title wraps at the table's (narrow) width.
    return Group(
        Text(f"{title} · {heading}" if title else heading, style="bold", no_wrap=True, overflow="ellipsis"),
        table,
        Text("rows true · columns predicted" + (" · % of row" if normalise else ""), style="dim", no_wrap=True),
    )


class ConfusionMatrix(Static):
    """Call `show(matrix, ...)` to draw or redraw; before that it says there is nothing to show."""

    DEFAULT_CSS = """
    ConfusionMatrix {
        height: auto;
        width: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(Text("no confusion matrix yet", style="dim"), id=id, classes=classes)
        self.matrix: list[list[int]] = []
        self.labels: tuple[str, ...] = tuple(LABELS)
        self.normalise = False

    def show(
        self,
        matrix: list[list[int]],
        *,
        labels: Sequence[str] = LABELS,
        normalise: bool = False,
        title: str = "",
        recall: bool = True,
    ) -> None:
        _check(matrix, labels)
        self.matrix = [list(row) for row in matrix]
        self.labels = tuple(labels)
        self.normalise = normalise
        self.update(confusion_table(self.matrix, labels=labels, normalise=normalise, title=title, recall=recall))
