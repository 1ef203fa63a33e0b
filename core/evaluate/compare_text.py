"""How a comparison of two runs reads: the one wording of its figures for `bizsent compare` and the Eval screen's
comparison. Every figure names its split and its number of posts. Pure string work (no numpy), so the console can
import it before the first comparison is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bizsent.core.labels import LABELS

if TYPE_CHECKING:
    from bizsent.core.evaluate.compare import Comparison
    from bizsent.core.evaluate.paired import PairedDiff

ALPHA = 0.05


def signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def _diff_line(name: str, d: PairedDiff, where: str) -> str:
    ci = f" [95% CI {signed(d.ci[0])}, {signed(d.ci[1])}]" if d.ci else ""
    return f"{name} ({where}): A {100 * d.a:.1f}% → B {100 * d.b:.1f}%, B − A {signed(d.diff)} points{ci}"


def where(c: Comparison) -> str:
    """"test, n=120": the split and the number of posts, named next to every figure."""
    return f"{c.split}, n={c.stats.n}"


def title(c: Comparison) -> str:
    left = ""
    if c.only_a or c.only_b:
        left = (f" ({c.only_a} scored only by run {c.run_a.id}, {c.only_b} only by run {c.run_b.id}: left out)")
    return (f"run {c.run_a.id} {c.run_a.name} (A) vs run {c.run_b.id} {c.run_b.name} (B) on the {c.stats.n} "
            f"human {c.split} posts both scored{left}")


def verdict(c: Comparison) -> str:
    """What the figures allow one to say, in words: McNemar for accuracy, the interval for macro-F1."""
    s = c.stats
    acc = (f"accuracy differs beyond chance (p = {s.mcnemar.p_value:.2g} < {ALPHA})" if s.mcnemar.p_value < ALPHA
           else f"no evidence that accuracy differs (p = {s.mcnemar.p_value:.2g})")
    ci = s.macro_f1.ci
    if ci is None:
        f1 = "macro-F1 without an interval"
    elif ci[0] > 0 or ci[1] < 0:
        f1 = f"macro-F1 {'higher' if ci[0] > 0 else 'lower'} for B (the interval excludes 0)"
    else:
        f1 = "macro-F1 within the noise (the interval includes 0)"
    return f"on these {s.n} {c.split} posts: {acc}; {f1}"


def summary_lines(c: Comparison) -> list[str]:
    s = c.stats
    m = s.mcnemar
    boot = f"paired bootstrap, {s.n_boot} draws, seed {s.seed}" if s.n_boot else "no bootstrap"
    return [
        title(c),
        _diff_line("accuracy", s.accuracy, where(c)),
        _diff_line("macro-F1", s.macro_f1, where(c)) + f" ({boot})",
        f"McNemar on accuracy ({where(c)}): B right where A wrong {m.b_only}, A right where B wrong {m.a_only}: "
        f"p = {m.p_value:.3g} ({m.method})",
        verdict(c),
        f"they disagree on {len(s.disagree)} of the {s.n} {c.split} posts",
    ]


def matrix_title(c: Comparison, which: str) -> str:
    run = c.run_a if which == "a" else c.run_b
    return f"{which.upper()}: run {run.id} {run.name} · {where(c)}"


def matrix_rows(cm: list[list[int]]) -> list[list[str]]:
    """Header row then one row per true label: the plain-text matrix the CLI prints (rows truth, columns model)."""
    return [["truth \\ model", *LABELS], *([label, *map(str, row)] for label, row in zip(LABELS, cm, strict=True))]
