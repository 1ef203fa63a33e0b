"""Keep a DataTable's rows in step with a freshly read list, the way the Jobs and Pods screens poll: rebuild only
when the rows or their order changed (keeping the cursor on the same item), else update just the cells that
differ, so a once-a-second poll never makes the list jump."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from textual.widgets import DataTable

Item = TypeVar("Item")


def sync_rows(table: DataTable, shown: dict[Any, Item], order: list[Any], items: Sequence[Item],
              key: Callable[[Item], Hashable], cells: Callable[[Item], Sequence[Any]], columns: Sequence[str],
              selected: Any) -> list[Any]:
    """Bring `table` (showing `shown` in `order`) to `items`; returns the new order."""
    new_order = [key(item) for item in items]
    if new_order != order:
        table.clear()
        for item in items:
            table.add_row(*cells(item), key=str(key(item)))
        if selected in new_order:
            table.move_cursor(row=new_order.index(selected), animate=False)
        return new_order
    for item in items:
        if shown.get(key(item)) != item:
            for column, cell in zip(columns, cells(item), strict=True):
                table.update_cell(str(key(item)), column, cell, update_width=True)
    return new_order
