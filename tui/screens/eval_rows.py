"""The Eval screen's two lists as rows for tui.widgets.fitted_table: their columns, what drops first at 80
columns (a group at a time), and the cells (pure drawing; the figures come formatted from core.evaluate.tables)."""

from __future__ import annotations

from bizsent.core.evaluate.runs import RunRow
from bizsent.core.evaluate.tables import DETAIL_HEADERS, on_split, pct
from rich.text import Text

# The name takes the room the other columns leave; at 80 columns the minor ones drop in this order, so the best
# F1 keeps its split and size and the metrics keep accuracy and macro-F1 with their intervals.
RUN_COLUMNS = ("id", "kind", "name", "state", "created", "best F1")
RUN_DROP = (("created",), ("kind",))
METRIC_DROP = (DETAIL_HEADERS[6:], ("ECE",), ("kind",))  # per class first: the matrix above shows them
SYSTEM_ROOM = 25  # "CryptoBERT+VADER ensemble", "agree/confidence rule" whole at 80 columns (ECE drops)
ROW_STYLES = {"model": "bold", "published": "dim"}  # by row kind (core.evaluate.tables.detail_rows)


def run_cells(run: RunRow) -> list[Text]:
    state_style = {"running": "bold yellow", "failed": "red", "dead": "red", "done": "green"}.get(run.state, "")
    best = on_split(pct(run.best_f1), run.best_split, run.best_n)
    return [Text(str(run.id)), Text(run.kind), Text(run.name), Text(run.state, style=state_style),
            Text((run.created or "")[:16].replace("T", " ")), Text(best)]


def metric_rows(rows: list[tuple[list[str], str]]) -> list[tuple[list[Text], None]]:
    return [([Text(c, style=ROW_STYLES.get(kind, "")) for c in cells], None) for cells, kind in rows]
