"""Is run B really better than run A? Paired statistics of two runs' labels on the SAME posts.

- The difference in accuracy and macro-F1 (B minus A) with a seeded paired-bootstrap 95% interval: each draw
  resamples posts once and scores both runs on that one resample, so how hard the drawn posts are cancels out
  and the interval is far narrower than two separate intervals would suggest.
- McNemar's test for accuracy: only the posts exactly one run got right carry information. With fewer than
  EXACT_BELOW such posts the two-sided exact binomial test (the binomial sum, no scipy); from there on the
  continuity-corrected chi-square on one degree of freedom, whose tail is erfc(sqrt(x / 2)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from bizsent.core.evaluate.metrics import INDEX, confusion_matrix, from_confusion

N_BOOT = 2000
LEVEL = 0.95
EXACT_BELOW = 25  # discordant posts under which the chi-square approximation is poor (the usual rule of thumb)
EXACT, CHI_SQUARE = "exact binomial", "chi-square, continuity-corrected"


@dataclass(frozen=True, slots=True)
class McNemar:
    a_only: int  # posts A got right and B wrong
    b_only: int  # posts B got right and A wrong
    p_value: float
    method: str


@dataclass(frozen=True, slots=True)
class PairedDiff:
    a: float
    b: float
    diff: float  # b - a
    ci: tuple[float, float] | None  # paired-bootstrap interval of diff (None without bootstrap)


@dataclass(frozen=True, slots=True)
class PairedStats:
    n: int
    accuracy: PairedDiff
    macro_f1: PairedDiff
    mcnemar: McNemar
    confusion_a: list[list[int]]
    confusion_b: list[list[int]]
    disagree: list[int]  # positions where the two runs' labels differ
    n_boot: int
    seed: int


def mcnemar(a_only: int, b_only: int) -> McNemar:
    """McNemar's test of equal accuracy from the discordant counts (exact binomial below EXACT_BELOW)."""
    n = a_only + b_only
    if n == 0:
        return McNemar(a_only, b_only, 1.0, EXACT)
    if n < EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n
        return McNemar(a_only, b_only, min(1.0, 2 * tail), EXACT)
    x = (abs(a_only - b_only) - 1) ** 2 / n
    return McNemar(a_only, b_only, math.erfc(math.sqrt(x / 2)), CHI_SQUARE)


def resample(n: int, *, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n) post indices, drawn with replacement: the same draws for both runs."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _macro_f1_rows(codes: np.ndarray) -> np.ndarray:
    """Macro-F1 of every row of `codes` (3 * truth + prediction), as metrics.macro_f1 computes it: a class
    without predictions or without truth has F1 0 and still counts in the mean."""
    k = len(INDEX)
    rows = codes.shape[0]
    flat = codes + (k * k) * np.arange(rows)[:, None]
    cm = np.bincount(flat.ravel(), minlength=rows * k * k).reshape(rows, k, k).astype(float)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    predicted, actual = cm.sum(axis=1), cm.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return f1.mean(axis=1)


def paired_differences(truth: Sequence[str], a: Sequence[str], b: Sequence[str],
                       idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 differences (B minus A) on every resample in `idx` (rows of post indices)."""
    t, pa, pb = (np.array([INDEX[x] for x in seq], dtype=np.int64) for seq in (truth, a, b))
    tt, aa, bb = t[idx], pa[idx], pb[idx]
    acc = (bb == tt).mean(axis=1) - (aa == tt).mean(axis=1)
    f1 = _macro_f1_rows(3 * tt + bb) - _macro_f1_rows(3 * tt + aa)
    return acc, f1


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def paired_stats(truth: Sequence[str], a: Sequence[str], b: Sequence[str], *, n_boot: int = N_BOOT,
                 seed: int = 0, level: float = LEVEL) -> PairedStats:
    """Both runs' confusion matrices, the paired differences with their interval, McNemar, the disagreements."""
    if not (len(truth) == len(a) == len(b)):
        raise ValueError("truth and both runs' labels must cover the same posts")
    ma, mb = (from_confusion(confusion_matrix(truth, p)) for p in (a, b))
    acc_ci = f1_ci = None
    if n_boot and truth:
        acc, f1 = paired_differences(truth, a, b, resample(len(truth), n_boot=n_boot, seed=seed))
        acc_ci, f1_ci = _interval(acc, level), _interval(f1, level)
    a_only = sum(x == t != y for t, x, y in zip(truth, a, b, strict=True))
    b_only = sum(y == t != x for t, x, y in zip(truth, a, b, strict=True))
    return PairedStats(
        n=len(truth),
        accuracy=PairedDiff(ma.accuracy, mb.accuracy, mb.accuracy - ma.accuracy, acc_ci),
        macro_f1=PairedDiff(ma.macro_f1, mb.macro_f1, mb.macro_f1 - ma.macro_f1, f1_ci),
        mcnemar=mcnemar(a_only, b_only),
        confusion_a=ma.confusion, confusion_b=mb.confusion,
        disagree=[k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y],
        n_boot=n_boot, seed=seed,
    )
