"""Classification metrics over the three labels: accuracy, macro-F1, per-class P/R/F1, the confusion matrix
(rows = truth, columns = prediction, in core.labels order), seeded bootstrap 95% intervals, expected
calibration error, and slices (sarcastic posts, per source).

A slice's macro-F1 averages over the classes present in its truth: a slice of 12 sarcastic posts with no
neutral one would otherwise count neutral's F1 as 0 and read a perfect model as 66.7%. The full set's macro-F1
averages over all three classes (the test set is expected to hold all of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from bizsent.core.labels import LABELS

INDEX = {label: k for k, label in enumerate(LABELS)}


@dataclass(slots=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(slots=True)
class Metrics:
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    accuracy_ci: tuple[float, float] | None = None
    macro_f1_ci: tuple[float, float] | None = None
    ece: float | None = None
    slices: dict[str, Metrics] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["slices"] = {name: m.to_dict() for name, m in self.slices.items()}
        return out


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str]) -> np.ndarray:
    cm = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[INDEX[t], INDEX[p]] += 1
    return cm


def _safe(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def from_confusion(cm: Sequence[Sequence[int]], *, present_only: bool = False) -> Metrics:
    """Accuracy, per-class scores and macro-F1 from a confusion matrix (rows = truth); with `present_only`,
    macro-F1 over the classes with at least one true example."""
    m = np.asarray(cm, dtype=float)
    per_class = {}
    for k, label in enumerate(LABELS):
        tp = m[k, k]
        precision, recall = _safe(tp, m[:, k].sum()), _safe(tp, m[k, :].sum())
        f1 = _safe(2 * precision * recall, precision + recall)
        per_class[label] = ClassScores(precision, recall, f1, int(m[k, :].sum()))
    n = int(m.sum())
    averaged = [c.f1 for c in per_class.values() if c.support or not present_only] or [0.0]
    return Metrics(
        n=n, accuracy=_safe(np.trace(m), n), macro_f1=float(np.mean(averaged)),
        per_class=per_class, confusion=m.astype(int).tolist(),
    )


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    return from_confusion(confusion_matrix(y_true, y_pred)).accuracy


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    return from_confusion(confusion_matrix(y_true, y_pred)).macro_f1


def bootstrap_ci(y_true: Sequence[str], y_pred: Sequence[str], metric: Callable[[list, list], float], *,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` over resampled posts (seeded: same data, same interval)."""
    if not y_true:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    t, p = np.asarray(y_true), np.asarray(y_pred)
    draws = rng.integers(0, len(t), size=(n_boot, len(t)))
    values = np.array([metric(list(t[d]), list(p[d])) for d in draws])
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def expected_calibration_error(probs: Sequence[dict[str, float]], y_true: Sequence[str], bins: int = 10) -> float:
    """Weighted gap between confidence and accuracy over equal-width confidence bins of the top class."""
    if not probs:
        return 0.0
    conf = np.array([max(p.values()) for p in probs])
    hit = np.array([max(p, key=p.get) == t for p, t in zip(probs, y_true, strict=True)], dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(conf[sel].mean() - hit[sel].mean())
    return float(total)


def evaluate(y_true: Sequence[str], y_pred: Sequence[str], *, probs: Sequence[dict[str, float]] | None = None,
             sarcastic: Sequence[bool] | None = None, sources: Sequence[str] | None = None,
             n_boot: int = 1000, seed: int = 0) -> Metrics:
    """The full metric set; slices get point estimates only (they are small)."""
    result = from_confusion(confusion_matrix(y_true, y_pred))
    if n_boot:
        result.accuracy_ci = bootstrap_ci(y_true, y_pred, accuracy, n_boot=n_boot, seed=seed)
        result.macro_f1_ci = bootstrap_ci(y_true, y_pred, macro_f1, n_boot=n_boot, seed=seed)
    if probs is not None:
        result.ece = expected_calibration_error(probs, y_true)
    if sarcastic is not None:
        keep = [k for k, s in enumerate(sarcastic) if s]
        if keep:
            result.slices["sarcastic"] = _subset(y_true, y_pred, keep)
    if sources is not None:
        for source in sorted(set(sources)):
            keep = [k for k, s in enumerate(sources) if s == source]
            result.slices[f"source:{source}"] = _subset(y_true, y_pred, keep)
    return result


def _subset(y_true: Sequence[str], y_pred: Sequence[str], keep: list[int]) -> Metrics:
    return from_confusion(confusion_matrix([y_true[k] for k in keep], [y_pred[k] for k in keep]), present_only=True)
