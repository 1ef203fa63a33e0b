"""The last lines of a log, newest at the bottom: as many as fit, each cut to the width (a wrapped line would
push newer ones out of view)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget


class LogTail(Widget):
    """`show(lines)` with the log's latest lines; redraws only when they changed."""

    DEFAULT_CSS = "LogTail { height: 1fr; min-height: 3; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.lines: list[str] = []
        self.message = "no log yet"

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
        for i, line in enumerate(self.lines[-max(height, 1):]):
            piece = Text.from_ansi(line, no_wrap=True)
            piece.truncate(max(width, 1), overflow="ellipsis")
            if i:
                out.append("\n")
            out.append_text(piece)
        return out
