"""Self-training: pseudo-label unlabeled posts the model is sure about, retrain, and report each round on the
same human test set; stop when the test macro-F1 stops improving.

Per-class thresholds come from the validation split: the lowest probability at which that class's predictions
still reach the target precision (so a class the model is bad at gets few or no pseudo labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from core.labels import LABELS
from core.posts import set_label
from core.records import NewLabel
from core.scoring import Scored
from core.store import transaction


@dataclass(slots=True)
class Round:
    round: int
    run_id: int
    macro_f1: float
    accuracy: float
    thresholds: dict[str, float | None]
    pseudo_added: int
    train_size: int


@dataclass(slots=True)
class SelfTrainResult:
    rounds: list[Round] = field(default_factory=list)
    stopped: str = ""

    @property
    def best(self) -> Round | None:
        return max(self.rounds, key=lambda r: r.macro_f1, default=None)


def choose_thresholds(truth: Sequence[str], scored: Sequence[Scored], target_precision: float,
                      min_support: int = 1) -> dict[str, float | None]:
    """For each class, the lowest confidence whose predictions of that class reach `target_precision` on val."""
    out: dict[str, float | None] = {}
    for label in LABELS:
        preds = sorted(((s.probs[label], t == label) for s, t in zip(scored, truth, strict=True) if s.label == label),
                       reverse=True)
        best = None
        hits = 0
        for k, (prob, hit) in enumerate(preds, start=1):
            hits += hit
            if k >= min_support and hits / k >= target_precision:
                best = prob
        out[label] = best
    return out


def pseudo_labels(scored: Sequence[Scored], thresholds: dict[str, float | None]) -> list[Scored]:
    return [s for s in scored if thresholds.get(s.label) is not None and s.probs[s.label] >= thresholds[s.label]]


def write_pseudo_labels(db: sqlite_utils.Database, picks: Sequence[Scored], labeler: str) -> int:
    with transaction(db):
        for s in picks:
            set_label(db, s.post_id, NewLabel(label=s.label, source="pseudo", labeler=labeler,
                                              confidence=round(s.probs[s.label], 4), split="train"))
    return len(picks)


def selftrain(db: sqlite_utils.Database, settings: Any, work_dir: Path, *, rounds: int = 3,
              target_precision: float = 0.9, max_steps: int | None = None, load_in_4bit: bool | None = None,
              progress: Any = print) -> SelfTrainResult:
    """Round 0 trains on the current labels; every later round adds pseudo labels from the previous model."""
    from core.acquisition import unlabeled_inputs
    from core.dataset import build_dataset, export_bundle, read_split
    from core.report import evaluate_run, load_for_run, run_row
    from core.scoring import score
    from core.training import score_inputs, train_run

    result = SelfTrainResult()
    cfg = settings.train
    for n in range(rounds):
        bundle = export_bundle(build_dataset(db, settings.image_dir, cfg), Path(work_dir) / f"round{n}" / "bundle",
                               max_pixels=cfg.max_pixels)
        run_id, _ = train_run(db, settings, bundle=bundle, out_dir=Path(work_dir) / f"round{n}",
                              name=f"selftrain-r{n}", max_steps=max_steps, load_in_4bit=load_in_4bit)
        report, _, _ = evaluate_run(db, settings, run_id)
        model, processor = load_for_run(run_row(db, run_id), settings)
        val_rows = read_split(bundle, "val")
        val_scored = score(model, processor, score_inputs(bundle, val_rows), batch_size=cfg.batch_size)
        thresholds = choose_thresholds([r["label"] for r in val_rows], val_scored, target_precision)
        previous = result.best
        this = Round(n, run_id, report.model.macro_f1, report.model.accuracy, thresholds, 0,
                     len(read_split(bundle, "train")))
        result.rounds.append(this)
        progress(f"round {n}: run {run_id}, test macro-F1 {100 * this.macro_f1:.1f}%, "
                 f"accuracy {100 * this.accuracy:.1f}%, thresholds {thresholds}")
        if previous is not None and this.macro_f1 <= previous.macro_f1:
            result.stopped = f"test macro-F1 did not improve in round {n}"
            break
        if n == rounds - 1:
            result.stopped = f"reached {rounds} rounds"
            break
        unlabeled = unlabeled_inputs(db, settings.image_dir)
        picks = pseudo_labels(score(model, processor, unlabeled, batch_size=cfg.batch_size), thresholds)
        this.pseudo_added = write_pseudo_labels(db, picks, f"selftrain:run{run_id}")
        progress(f"round {n}: {this.pseudo_added} pseudo labels from {len(unlabeled)} unlabeled posts")
        if not picks:
            result.stopped = "no unlabeled post cleared the thresholds"
            break
    return result
