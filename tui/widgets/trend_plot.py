"""One coin's sentiment over time: bullish and bearish share per day (left axis, 0..1) and posts per day (right
axis), drawn with plotext into a string at the widget's size (the pattern and the figure lock of loss_plot)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bizsent.core.coins.trends import DayPoint
from bizsent.tui.widgets.loss_plot import _LOCK, MIN_HEIGHT, MIN_WIDTH
from rich.text import Text
from textual.widget import Widget

BULL_COLOR, BEAR_COLOR, VOLUME_COLOR = 10, 9, 8  # xterm-256: green, red, grey


def render_trend(series: Sequence[DayPoint], width: int, height: int) -> str:
    """The plot as ANSI text of `height` lines; x is days back from now (0 = the last 24 hours)."""
    import plotext

    scored = [p for p in series if p.scored]
    with _LOCK:
        fig = plotext.figure
        fig.clear()
        fig.theme("simple")
        fig.plot_size(width, height)
        fig.legend(active=False)
        if series:
            fig.draw(fig.signal([-p.days_ago for p in series], [p.posts for p in series],
                                marker=plotext.marker("·", pixel=VOLUME_COLOR), yside="right"))
        for share, color in (("bullish_share", BULL_COLOR), ("bearish_share", BEAR_COLOR)):
            if scored:
                fig.draw(fig.signal([-p.days_ago for p in scored], [getattr(p, share).value for p in scored],
                                    marker=plotext.marker("hd", pixel=color)).lines())
        if scored:
            fig.ruler("y").lim(0, 1)
        return str(fig.build())


class TrendPlot(Widget):
    """`show(coin, series)`; redraws at its own size whenever that or the data changes."""

    DEFAULT_CSS = "TrendPlot { height: 1fr; min-height: 6; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.coin = ""
        self.series: list[DayPoint] = []
        self._cache: tuple[tuple, Text] | None = None
        self._version = 0

    def redraw(self) -> None:
        """Draw again (plotext has been imported since the last try)."""
        self._version += 1
        self.refresh()

    def show(self, coin: str, series: Sequence[DayPoint]) -> None:
        self.coin, self.series = coin, list(series)
        self._version += 1
        self.refresh()

    @property
    def rendered(self) -> Text:
        key = (self.content_region.width, self.content_region.height, self._version)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._build(*key[:2]))
        return self._cache[1]

    def _build(self, width: int, height: int) -> Text:
        if not self.series:
            return Text("no coin selected" if not self.coin else f"no posts mention {self.coin}", style="dim")
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return Text(f"too small for the plot ({width}x{height})", style="dim")
        if "plotext" not in sys.modules:  # the screen's worker imports it; drawing waits rather than the keys
            return Text("drawing…", style="dim")
        out = Text.assemble((f"{self.coin}  ", "bold"), ("━ ", f"color({BULL_COLOR})"), ("bullish  ", ""),
                            ("━ ", f"color({BEAR_COLOR})"), ("bearish  ", ""), ("· ", f"color({VOLUME_COLOR})"),
                            ("posts/day (right)", "dim"), no_wrap=True)
        out.truncate(width, overflow="ellipsis")
        out.append("\n")
        out.append_text(Text.from_ansi(render_trend(self.series, width, height - 1), no_wrap=True))
        return out

    def render(self) -> Text:
        return self.rendered
