"""One coin's sentiment over time: bullish and bearish share per day (left axis, 0..1) and posts per day (right
axis), drawn with plotext into a string at the widget's size (the pattern and the figure lock of loss_plot)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from bizsent.core.coins.trends import DayPoint
from bizsent.tui.widgets.ansi_strips import ansi_strips
from bizsent.tui.widgets.loss_plot import _LOCK, MIN_HEIGHT, MIN_WIDTH
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

BULL_COLOR, BEAR_COLOR, VOLUME_COLOR = 10, 9, 8  # xterm-256: green, red, grey
_LOADED = threading.Event()  # plotext is imported (its import takes a quarter second: see load_plotext)
KEEP_DRAWN = 128  # plots kept (coins x sizes x data); all are dropped past it, the next draws refill it


def load_plotext() -> None:
    """Import plotext, from a worker thread. The widget draws only once this has returned: a module is in
    sys.modules while its import still runs, and an event loop that imported it then would wait for the rest."""
    import plotext  # noqa: F401

    _LOADED.set()


def plotext_loaded() -> bool:
    return _LOADED.is_set()


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
    """`show(coin, series)`; draws the coin's plot at the widget's size through the Line API.

    Lines are strips made straight from plotext's ANSI (widgets.ansi_strips) and kept per coin, data and size,
    and `predraw` (from a worker thread) draws the other coins ahead, so moving the cursor to a coin usually costs
    a lookup, not a plotext build on the event loop."""

    DEFAULT_CSS = "TrendPlot { height: 1fr; min-height: 6; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.coin = ""
        self.series: tuple[DayPoint, ...] = ()
        self._drawn: dict[tuple, list[Strip]] = {}  # (coin, series, width, height) -> lines
        self._shown: tuple[tuple, list[Strip]] = ((), [])  # what the last paint drew: render_line runs per line

    def redraw(self) -> None:
        """Draw again (plotext has been imported since the last try)."""
        self.refresh()

    def show(self, coin: str, series: Sequence[DayPoint]) -> None:
        self.coin, self.series = coin, tuple(series)
        self._shown = ((), [])
        self.refresh()

    def predraw(self, plots: Sequence[tuple[str, Sequence[DayPoint]]]) -> None:
        """Draw these coins' plots at the current size ahead of time: called from a worker thread (plotext's
        figure lock serialises it with the event loop's draws); stops early once the size changed."""
        size = self.content_size
        for coin, series in plots:
            if self.content_size != size or not size.area:
                return
            self._lines(coin, tuple(series), size.width, size.height)

    def is_drawn(self, coin: str, series: Sequence[DayPoint]) -> bool:
        """Is this coin's plot at the current size drawn already (a key to it costs no plotext build)?"""
        return (coin, tuple(series), self.content_size.width, self.content_size.height) in self._drawn

    @property
    def rendered(self) -> list[Strip]:
        """The widget's lines at its current size (the same Strip objects until something changes, so the
        compositor's per-strip caches hit)."""
        size = self.content_size
        if self._shown[0] != (size, plotext_loaded()):
            self._shown = ((size, plotext_loaded()),
                           self._lines(self.coin, self.series, size.width, size.height))
        return self._shown[1]

    @property
    def text(self) -> str:
        """What the widget shows, without colours."""
        return "\n".join(strip.text.rstrip() for strip in self.rendered).rstrip()

    def _lines(self, coin: str, series: tuple[DayPoint, ...], width: int, height: int) -> list[Strip]:
        key = (coin, series, width, height)
        lines = self._drawn.get(key)
        if lines is None:
            drawn = [strip.crop_extend(0, width, None) for strip in self._build(coin, series, width, height)]
            lines = drawn[:height] + [Strip.blank(width)] * (height - len(drawn))
            if plotext_loaded():  # not the placeholder shown while it loads
                if len(self._drawn) >= KEEP_DRAWN:
                    self._drawn.clear()
                self._drawn[key] = lines
        return lines

    @staticmethod
    def _build(coin: str, series: tuple[DayPoint, ...], width: int, height: int) -> list[Strip]:
        if not series:
            return [_note("no coin selected" if not coin else f"no posts mention {coin}")]
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return [_note(f"too small for the plot ({width}x{height})")]
        if not plotext_loaded():  # the screen's worker imports it; drawing waits rather than the keys
            return [_note("drawing…")]
        legend = Strip([Segment(f"{coin}  ", Style(bold=True)), Segment("━ ", _color(BULL_COLOR)),
                        Segment("bullish  "), Segment("━ ", _color(BEAR_COLOR)), Segment("bearish  "),
                        Segment("· ", _color(VOLUME_COLOR)), Segment("posts/day (right)", Style(dim=True))])
        return [legend, *ansi_strips(render_trend(series, width, height - 1))]

    def render_line(self, y: int) -> Strip:
        lines = self.rendered
        return lines[y] if y < len(lines) else Strip.blank(self.content_size.width)


def _note(line: str) -> Strip:
    return Strip([Segment(line, Style(dim=True))])


def _color(code: int) -> Style:
    return Style(color=Color.from_ansi(code))
