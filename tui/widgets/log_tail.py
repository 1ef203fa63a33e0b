"""The last lines of a log, newest at the bottom: as many as fit, each cut to the width (a wrapped line would
push newer ones out of view)."""

from __future__ import annotations

from collections.abc import Sequence

from bizsent.tui.keys import nav_bindings
from rich.text import Text
from textual.widget import Widget


class LogTail(Widget, can_focus=True):
    """`show(lines)` with the log's latest lines; redraws only when they changed. Tab reaches it and the moving
    keys scroll back through the lines it holds (End follows the newest again)."""

    DEFAULT_CSS = "LogTail { height: 1fr; min-height: 3; } LogTail:focus { background: $boost; }"
    BINDINGS = nav_bindings({"nav.down": "back(-1)", "nav.up": "back(1)", "nav.page_down": "back_pages(-1)",
                             "nav.page_up": "back_pages(1)", "nav.top": "back(1_000_000)",
                             "nav.bottom": "back(-1_000_000)"})

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.lines: list[str] = []
        self.message = "no log yet"
        self.back = 0  # lines scrolled back from the newest

    def action_back(self, rows: int) -> None:
        back = min(max(self.back + rows, 0), max(len(self.lines) - self.content_region.height, 0))
        if back != self.back:
            self.back = back
            self.refresh()

    def action_back_pages(self, direction: int) -> None:
        self.action_back(direction * max(self.content_region.height - 1, 1))

    def show(self, lines: Sequence[str], *, message: str = "") -> None:
        lines = list(lines)
        if lines == self.lines and message == self.message:
            return
        self.lines, self.message = lines, message
        self.refresh()

    def render(self) -> Text:
        if not self.lines:
            return Text(self.message or "no log lines yet", style="dim")
        height, width = self.content_region.height, self.content_region.width
        out = Text(no_wrap=True, overflow="ellipsis")
        end = len(self.lines) - self.back
        for i, line in enumerate(self.lines[max(end - max(height, 1), 0):end]):
            piece = Text.from_ansi(line, no_wrap=True)
            piece.truncate(max(width, 1), overflow="ellipsis")
            if i:
                out.append("\n")
            out.append_text(piece)
        return out
