"""ANSI text (what plotext draws) as Textual strips, for widgets that draw through the Line API.

Rich's `Text.from_ansi` followed by Textual's conversion of that Text to strips costs about 40 ms for a 30-line
plot on a loaded laptop, most of a key press on the Trends screen; plotext writes a reset and one SGR run per
colour change, so splitting on the escapes and looking each run's style up in a small cache does the same in a
few ms. Each distinct escape sequence is decoded once, by Rich itself, so the colours are Rich's reading of them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

_SGR = re.compile(r"\x1b\[([0-9;]*)m")


@lru_cache(maxsize=256)
def sgr_style(codes: str) -> Style:
    """The style of the SGR parameters `codes` ("38;5;10", "0"), as Rich decodes them."""
    spans = Text.from_ansi(f"\x1b[{codes}mX").spans
    style = spans[0].style if spans else Style.null()
    return Style.parse(style) if isinstance(style, str) else style


def ansi_strips(ansi: str) -> list[Strip]:
    """One strip per line of `ansi`; SGR codes accumulate until a reset (0 or empty), as a terminal reads them."""
    strips = []
    for line in ansi.split("\n"):
        segments, codes, at = [], "", 0
        for match in _SGR.finditer(line):
            if match.start() > at:
                segments.append(Segment(line[at:match.start()], sgr_style(codes) if codes else None))
            got = match.group(1)
            codes = "" if got in ("", "0") else f"{codes};{got}" if codes else got
            at = match.end()
        if at < len(line):
            segments.append(Segment(line[at:], sgr_style(codes) if codes else None))
        strips.append(Strip(segments))
    return strips
