"""The DataTable every list of the console uses and the scrolling pane every detail uses: the shared moving
keys (tui.keys.NAV), with Home/End and g/G going to the first and last row (Textual's DataTable sends Home/End
to the first and last column)."""

from __future__ import annotations

from collections.abc import Iterable

from bizsent.tui.keys import nav_bindings
from textual.containers import VerticalScroll
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

TABLE_NAV = {"nav.down": "cursor_down", "nav.up": "cursor_up", "nav.page_down": "page_down",
             "nav.page_up": "page_up", "nav.top": "scroll_top", "nav.bottom": "scroll_bottom"}


class NavTable(DataTable):
    BINDINGS = nav_bindings(TABLE_NAV)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Textual's DataTable widens its columns for new rows when idle, but keeps the lines it drew before (its
        # caches are keyed by an update count, not by the widths): a list filled from a worker could stay drawn
        # with every column cut to its header (Eval's metrics, about one start in five) until the next key.
        super()._update_dimensions(new_rows)
        self._clear_caches()
        self.refresh()


class NavScroll(VerticalScroll):
    """A scrolling pane (a job's detail, a post's text) that Tab reaches and the moving keys scroll."""

    BINDINGS = nav_bindings({"nav.down": "scroll_down", "nav.up": "scroll_up", "nav.page_down": "page_down",
                             "nav.page_up": "page_up", "nav.top": "scroll_home", "nav.bottom": "scroll_end"})
