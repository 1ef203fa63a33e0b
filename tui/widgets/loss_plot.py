"""The training curve of a run: train loss as a line (left axis) and evaluation accuracy / macro-F1 as points
(right axis, 0..1), drawn with plotext into a string at the widget's size and shown as Rich text.

The eval loss is not drawn: it is the answer's first-token cross-entropy, while the train loss is the mean over
the answer's tokens, three of which are near zero (core.model.training.TRAIN_LOSS_OVER / EVAL_LOSS_OVER), so the
two on one axis would show a 3-4x gap that is not overfitting. The legend says which loss the line is.

plotext draws on one module-level figure, so every render takes a lock; a render is a few ms (the loss line is
bucketed down to what the canvas can show), cheap enough to redo on each resize and each new batch of events.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

LOSS_COLOR, ACC_COLOR, F1_COLOR = 12, 10, 11  # xterm-256 codes: bright blue, green, yellow
MIN_WIDTH, MIN_HEIGHT = 24, 5
X_TICKS = 5
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class EvalPoint:
    step: int | None  # None: an evaluation after training (drawn at the last step)
    accuracy: float | None
    macro_f1: float | None


def bucketed(points: Sequence[tuple[int, float]], buckets: int) -> list[tuple[float, float]]:
    """At most `buckets` points: consecutive runs averaged, so a noisy loss keeps its trend at any width."""
    if len(points) <= buckets:
        return [(float(x), float(y)) for x, y in points]
    out = []
    for b in range(buckets):
        chunk = points[b * len(points) // buckets:(b + 1) * len(points) // buckets]
        out.append((sum(x for x, _ in chunk) / len(chunk), sum(y for _, y in chunk) / len(chunk)))
    return out


def _int_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    if hi <= lo:
        return [lo], [str(round(lo))]
    positions = sorted({round(lo + (hi - lo) * k / (X_TICKS - 1)) for k in range(X_TICKS)})
    return [float(p) for p in positions], [str(p) for p in positions]


def render_plot(train: Sequence[tuple[int, float]], evals: Sequence[EvalPoint], width: int, height: int) -> str:
    """The plot as ANSI text of exactly `height` lines (no legend: the widget draws its own, in colour)."""
    import plotext  # a quarter second to import: paid when a plot is first drawn, not at console start-up

    last_step = max([s for s, _ in train] + [p.step for p in evals if p.step is not None], default=0)
    loss = bucketed(sorted(train), max(2 * (width - 12), 2))
    acc = [(float(last_step if p.step is None else p.step), p.accuracy) for p in evals if p.accuracy is not None]
    f1 = [(float(last_step if p.step is None else p.step), p.macro_f1) for p in evals if p.macro_f1 is not None]
    xs = [x for x, _ in loss + acc + f1]
    with _LOCK:
        fig = plotext.figure
        fig.clear()
        fig.theme("simple")  # no background colours: the plot sits on the console's own background
        fig.plot_size(width, height)
        fig.legend(active=False)
        if loss:
            fig.draw(fig.signal([x for x, _ in loss], [y for _, y in loss],
                                marker=plotext.marker("hd", pixel=LOSS_COLOR)).lines())
        for series, symbol, color in ((acc, "x", ACC_COLOR), (f1, "o", F1_COLOR)):
            if series:
                fig.draw(fig.signal([x for x, _ in series], [y for _, y in series],
                                    marker=plotext.marker(symbol, pixel=color), yside="right"))
        if acc or f1:
            fig.ruler("y", "right").lim(0, 1)
        fig.ruler("x").ticks(*_int_ticks(min(xs), max(xs)))
        return str(fig.build())


def legend(n_train: int, n_eval: int, width: int) -> Text:
    """One line, cut to `width`: a wrapped legend would push the plot's x axis out of the widget."""
    out = Text.assemble(
        ("━ ", f"color({LOSS_COLOR})"), (f"train loss per answer token ({n_train} steps)  ", ""),
        ("x ", f"color({ACC_COLOR})"), ("accuracy  ", ""), ("o ", f"color({F1_COLOR})"), ("macro-F1", ""),
        (f" ({n_eval} evals, right axis)", "dim"), no_wrap=True,
    )
    out.truncate(width, overflow="ellipsis")
    return out


class LossPlot(Widget):
    """`show(train, evals)` with the run's events; redraws at its own size whenever that or the data changes."""

    DEFAULT_CSS = "LossPlot { height: 1fr; min-height: 6; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.train: list[tuple[int, float]] = []
        self.evals: list[EvalPoint] = []
        self.message = "no run selected"
        self._cache: tuple[tuple, Text] | None = None
        self._version = 0

    def show(self, train: Sequence[tuple[int, float]], evals: Sequence[EvalPoint], *, message: str = "") -> None:
        self.train, self.evals = list(train), list(evals)
        self.message = message or ("no training steps or evaluations logged for this run yet"
                                   if not self.train and not self.evals else "")
        self._version += 1
        self.refresh()

    @property
    def rendered(self) -> Text:
        """What the widget shows at its current size (built once per size and data version)."""
        width, height = self.content_region.width, self.content_region.height
        key = (width, height, self._version)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._build(width, height))
        return self._cache[1]

    def _build(self, width: int, height: int) -> Text:
        if self.message:
            return Text(self.message, style="dim")
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return Text(f"too small for the plot ({width}x{height})", style="dim")
        out = legend(len(self.train), len(self.evals), width)
        out.append("\n")
        out.append_text(Text.from_ansi(render_plot(self.train, self.evals, width, height - 1), no_wrap=True))
        return out

    def render(self) -> Text:
        return self.rendered
