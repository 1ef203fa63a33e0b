"""How the console draws the values every screen shows: the colour of each label, its glyph in a post list, and
a post's time."""

from __future__ import annotations

from datetime import UTC, datetime

LABEL_COLORS = {"bearish": "red", "neutral": "yellow", "bullish": "green"}
LABEL_GLYPHS = {"bearish": "▼", "neutral": "•", "bullish": "▲"}


def label_color(label: str) -> str:
    """The label's colour ('' for anything that is not a label: the terminal's own)."""
    return LABEL_COLORS.get(label, "")


def format_time(stamp: int | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%y-%m-%d %H:%M")
