"""How the console draws the values every screen shows: the colour of each label, its glyph in a post list, and
a post's time; and the palette the light theme paints ANSI colours with."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.terminal_theme import TerminalTheme

LABEL_COLORS = {"bearish": "red", "neutral": "yellow", "bullish": "green"}
LABEL_GLYPHS = {"bearish": "▼", "neutral": "•", "bullish": "▲"}
# Textual paints ANSI colours (the labels', the flags line's) through a palette per theme. Its light one
# (ALABASTER) has a yellow and a green of 2.1:1 and 3.2:1 on the light theme's #e0e0e0: these are darkened to
# 5:1 and more (WCAG asks 4.5:1 for text); the rest is ALABASTER's.
LIGHT_ANSI = TerminalTheme(
    (247, 247, 247), (0, 0, 0),
    [(0, 0, 0), (170, 55, 49), (34, 105, 24), (125, 85, 0), (50, 92, 192), (122, 62, 157), (0, 131, 178),
     (247, 247, 247)],
    [(119, 119, 119), (240, 80, 80), (96, 203, 0), (255, 188, 93), (0, 122, 204), (230, 76, 230), (0, 170, 203),
     (247, 247, 247)],
)


def label_color(label: str) -> str:
    """The label's colour ('' for anything that is not a label: the terminal's own)."""
    return LABEL_COLORS.get(label, "")


def format_time(stamp: int | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%y-%m-%d %H:%M")
