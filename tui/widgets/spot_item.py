"""How Spot-check draws one prediction: the model's probability bars, and the labels the post already has (the
API labelers', agreeing or not, and the human one)."""

from __future__ import annotations

from bizsent.core.evaluate.spotcheck import SpotItem
from bizsent.core.labels import LABELS
from bizsent.tui.style import LABEL_COLORS, label_color
from rich.text import Text

BAR_WIDTH = 16


def prob_bars(item: SpotItem) -> Text:
    out = Text()
    for label in LABELS:
        p = item.probs.get(label, 0.0)
        filled = round(p * BAR_WIDTH)
        mark = "▶" if label == item.label else " "
        out.append(f"{mark}{label:<8}", style="bold" if label == item.label else "")
        out.append("█" * filled, style=LABEL_COLORS[label])
        out.append("░" * (BAR_WIDTH - filled), style="dim")
        out.append(f" {p:6.1%}\n")
    out.append(f" margin {item.margin:.2f}", style="dim")
    if item.disagreement is not None:
        out.append(f" · away from API {item.disagreement:.2f}", style="dim")
    return out


def label_lines(item: SpotItem) -> Text:
    out = Text()
    if not item.api:
        out.append("API: none\n", style="dim")
    for a in item.api:
        agree = a.label == item.label
        conf = f" {a.confidence:.2f}" if a.confidence is not None else ""
        out.append(f"{a.source}: ", style="dim")
        out.append(a.label, style=f"{label_color(a.label)}{' bold' if not agree else ''}")
        out.append(f"{conf} ({a.labeler})\n", style="dim")
    h = item.human
    out.append("human: ", style="bold")
    if h is None:
        out.append("none", style="dim")
    else:
        out.append(h.label, style=f"bold {label_color(h.label)}")
        out.append(f" ({h.split})", style="dim")
    return out
