"""A list whose columns fit its width (issue 21.6): every column is as wide as its widest cell, one flexible
column takes the room the others leave, and the minor columns drop in a fixed order (a group at a time) while
that room is below its least, so the key columns stay whole at 80 columns and the flexible one grows at 160.
The screen hands it whole rows (every column); it shows the columns that fit, refitting when rows or width
change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bizsent.tui.widgets.nav_table import NavTable
from rich.text import Text
from textual import events

PADDING = 2  # a cell's padding, both sides (DataTable's cell_padding 1)
SCROLLBAR = 1
LEAST, MOST = 14, 40  # the flexible column's characters, by default and at most

Row = tuple[Sequence[Text], str | None]  # the cells under every column, the row's key


@dataclass(frozen=True)
class Fit:
    columns: tuple[str, ...]
    room: int  # the flexible column's characters


def fit(widths: dict[str, int], flexible: str, drop: Sequence[Sequence[str]], width: int, least: int = LEAST) -> Fit:
    """The columns of `widths` (characters each, padding included) that leave the `flexible` one at least
    `least` of `width`, dropping `drop`'s groups in order."""
    columns = list(widths)

    def left() -> int:
        return width - SCROLLBAR - PADDING - sum(widths[c] for c in columns if c != flexible)

    for group in drop:
        if left() >= least:
            break
        columns = [c for c in columns if c not in group]
    return Fit(tuple(columns), max(least, min(MOST, left())))


def widest(headers: Sequence[str], rows: Sequence[Row]) -> dict[str, int]:
    """Each column's width as drawn: its widest cell or header, with the padding."""
    return {h: PADDING + max([len(h), *(cells[k].cell_len for cells, _ in rows)]) for k, h in enumerate(headers)}


def pick(cells: Sequence[Text], headers: Sequence[str], flexible: str, shown: Fit) -> list[Text]:
    """The cells under `shown.columns`, from a whole row under `headers`; the flexible column's cut to fit."""
    by_header = dict(zip(headers, cells, strict=True))
    cut = by_header[flexible].copy()
    cut.truncate(shown.room, overflow="ellipsis")
    return [cut if c == flexible else by_header[c] for c in shown.columns]


class FittedTable(NavTable):
    def __init__(self, headers: Sequence[str], flexible: str, drop: Sequence[Sequence[str]], least: int = LEAST,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.headers, self.flexible, self.drop, self.least = tuple(headers), flexible, tuple(drop), least
        self.shown: Fit | None = None
        self.given: list[Row] = []

    def on_resize(self, event: events.Resize) -> None:
        self.show(self.given)

    def show(self, rows: list[Row]) -> None:
        """Draw `rows`, with the columns that fit; the cursor keeps its row number."""
        self.given = rows
        if not self.size.width:
            return  # the first resize draws them
        shown = fit(widest(self.headers, rows), self.flexible, self.drop, self.size.width, self.least)
        cursor = self.cursor_row
        if shown.columns != (self.shown.columns if self.shown else None):
            self.clear(columns=True)
            self.add_columns(*shown.columns)
        self.shown = shown
        self.clear()
        for cells, key in rows:
            self.add_row(*pick(cells, self.headers, self.flexible, shown), key=key)
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
