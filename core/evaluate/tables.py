"""How a report reads as a table: the one formatting of its figures, for report.md, the `bizsent eval` table and
the console's Eval screen. Pure string work on a Report (no numpy here, so the console can import it before the
first report is computed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bizsent.core.labels import LABELS

if TYPE_CHECKING:
    from bizsent.core.evaluate.baselines import Baseline
    from bizsent.core.evaluate.metrics import Metrics
    from bizsent.core.evaluate.result import Report

HEADERS = ["system", "kind", "n", "accuracy % [95% CI]", "macro-F1 % [95% CI]", "recall bear/neu/bull %", "ECE %"]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def on_split(figure: str, split: str | None, n: int | None) -> str:
    """A figure with the split and the size it was measured on: "dev 44.4 (7 posts)"; a figure alone says little
    (a validation F1 on 7 posts is not a test F1 on 87)."""
    if figure == "-":
        return figure
    return f"{split or '?'} {figure}" + (f" ({n} post{'s' * (n != 1)})" if n is not None else "")


def with_ci(x: float | None, ci: tuple[float, float] | list[float] | None) -> str:
    """A percentage and its 95% interval: "41.3 [35.0, 47.9]"."""
    return pct(x) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else "")


def rows(report: Report) -> list[list[str]]:
    """Name, kind, n, accuracy (95% CI), macro-F1 (95% CI), recalls, ECE: one row per system."""
    m = report.model
    out = [[report.name, "model", str(m.n), with_ci(m.accuracy, m.accuracy_ci), with_ci(m.macro_f1, m.macro_f1_ci),
            "/".join(pct(m.per_class[k].recall) for k in LABELS), pct(m.ece)]]
    for name, sl in m.slices.items():
        out.append([f"  {name}", "slice", str(sl.n), pct(sl.accuracy), pct(sl.macro_f1),
                    "/".join(pct(sl.per_class[k].recall) for k in LABELS), ""])
    for b in report.baselines:
        recalls = "/".join(pct(b.metrics.per_class[k].recall) for k in LABELS) if b.metrics else "-"
        ci = b.metrics.accuracy_ci if b.metrics else None
        out.append([b.name, b.kind, str(b.n or "-"), with_ci(b.accuracy, ci), pct(b.macro_f1), recalls, ""])
    return out


# The wide table (the console's Eval screen): per-class precision/recall/F1 instead of recalls alone, and how
# each baseline row was obtained: computed here, the brief's published figures, or an API labeler in the store.
DETAIL_HEADERS = ("system", "kind", "n", "acc % [95% CI]", "macro-F1 % [95% CI]", "ECE",
                  *(f"{label[:4]} P/R/F1" for label in LABELS))
DETAIL_KINDS = {"live": "live", "published": "brief", "store": "API"}


def per_class(m: Metrics | None) -> list[str]:
    if m is None:
        return ["-"] * len(LABELS)
    return ["/".join(f"{100 * v:.0f}" for v in (c.precision, c.recall, c.f1))
            for c in (m.per_class[label] for label in LABELS)]


def detail_rows(report: Report) -> list[tuple[list[str], str]]:
    """(cells under DETAIL_HEADERS, row kind) per system: the model ("model"), its slices ("slice"), then every
    baseline (its own kind: live, published or store)."""
    m = report.model
    out = [([report.name, "model", str(m.n), with_ci(m.accuracy, m.accuracy_ci), with_ci(m.macro_f1, m.macro_f1_ci),
             pct(m.ece), *per_class(m)], "model")]
    for name, sl in m.slices.items():
        out.append(([f"  {name}", "slice", str(sl.n), pct(sl.accuracy), pct(sl.macro_f1), "", *per_class(sl)],
                    "slice"))
    return out + baseline_rows(report.baselines)


def baseline_rows(baselines: list[Baseline]) -> list[tuple[list[str], str]]:
    """(cells under DETAIL_HEADERS, the baseline's kind) per baseline: with a run's report, or alone before any."""
    out = []
    for b in baselines:
        ci = b.metrics.accuracy_ci if b.metrics else None
        out.append(([b.name, DETAIL_KINDS.get(b.kind, b.kind), str(b.n or "-"), with_ci(b.accuracy, ci),
                     pct(b.macro_f1), "", *per_class(b.metrics)], b.kind))
    return out
