"""Self-training: pseudo-label unlabeled posts the model is sure about, retrain, and keep the round that does best
on a fixed human-labelled validation split; the human test split is scored once, at the end, for that round.

- Validation is chosen once, before round 0 (seeded, stratified), from the training pool's human train labels
  (API labels only when there are too few human ones, and the report says so). It never changes between rounds
  and never holds a pseudo label: pseudo labels go to posts that had no label at all.
- Validation is sized for the noise it must resolve: at most VAL_MAX posts (a paired bootstrap on 400 posts
  resolves a macro-F1 gain of about 3 points), so with a large pool the other human labels train.
- Rounds are compared on validation macro-F1 by a paired bootstrap on the same posts: a round is accepted only
  when the one-sided 95% lower bound of its gain over the best round is above zero (a 100-200 post validation
  set moves 3-5 points by chance). A rejected round's pseudo labels (written by the previous round's model) are
  deleted from the store, and self-training stops. Choosing rounds on the test split would bias the reported
  figure upward, so the test split is not looked at until the end.
- Per-class thresholds come from validation: the lowest probability at which the exact (Clopper-Pearson)
  one-sided 95% lower bound of that class's precision still reaches the target, over at least `min_support`
  predictions: 5 right of 5 is a precision of at least 0.55, not 1.0, so a handful of lucky posts cannot set a
  threshold, and a class the model is bad at gets no pseudo labels.
- Pseudo labels are capped per class at the class's share of the round's human and API training labels times
  the number of picks (the most confident kept), so the class the model predicts most is not amplified.
- The model is loaded once per round (training keeps it for scoring validation and the unlabeled posts) and
  freed before the next round trains; the final test evaluation loads the chosen round's adapter.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.evaluate.metrics import Metrics, evaluate
from bizsent.core.labels import LABELS
from bizsent.core.model.scoring import Scored
from bizsent.core.store import transaction
from bizsent.core.store.posts import delete_label, set_label
from bizsent.core.store.records import NewLabel

MIN_SUPPORT = 5  # predictions of a class on validation needed before a threshold is trusted
MIN_HUMAN_VAL = 6  # fewer human train labels than this: validation falls back to API labels (and says so)
# Validation posts needed: if ~10% of predictions change between two rounds, the paired standard error of the
# gain is sqrt(0.1 / n), 1.6 points at 400 posts, so a gain of ~3 points is resolved; more would only hold back
# human labels from training.
VAL_MAX = 400
CONFIDENCE = 0.95  # one-sided, for the precision bound and the round acceptance
N_BOOT = 1000


@dataclass(slots=True)
class Round:
    round: int
    run_id: int
    macro_f1: float  # on the validation split
    accuracy: float  # on the validation split
    thresholds: dict[str, float | None]
    pseudo_added: int
    train_size: int
    accepted: bool = True
    gain: tuple[float, float] | None = None  # macro-F1 gain over the best round and its 95% lower bound


@dataclass(slots=True)
class SelfTrainResult:
    rounds: list[Round] = field(default_factory=list)
    stopped: str = ""
    val_posts: list[int] = field(default_factory=list)
    val_source: str = "human"  # human | api (too few human train labels)
    chosen: Round | None = None  # the round with the best validation macro-F1
    test: Metrics | None = None  # the chosen round on the human test split, evaluated once
    rolled_back: int = 0  # pseudo labels deleted with a rejected round

    @property
    def best(self) -> Round | None:
        return self.chosen

    def summary(self) -> str:
        if self.chosen is None:
            return f"stopped: {self.stopped}; no round finished"
        c, t = self.chosen, self.test
        line = (f"stopped: {self.stopped}. Rounds chosen on validation ({len(self.val_posts)} posts, "
                f"{self.val_source} labels): round {c.round} (run {c.run_id}), validation macro-F1 "
                f"{100 * c.macro_f1:.1f}%. Test evaluated once, on that round")
        if t is not None:
            ci = f" [{100 * t.macro_f1_ci[0]:.1f}, {100 * t.macro_f1_ci[1]:.1f}]" if t.macro_f1_ci else ""
            line += f": macro-F1 {100 * t.macro_f1:.1f}%{ci}, accuracy {100 * t.accuracy:.1f}% (n={t.n})"
        return line + "."


def precision_lower_bound(hits: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The exact (Clopper-Pearson) one-sided lower confidence bound of a precision of `hits` out of `n`: the p at
    which `hits` or more successes have probability 1 - confidence (found by bisection; no scipy needed)."""
    if hits <= 0:
        return 0.0
    alpha = 1.0 - confidence

    def tail(p: float) -> float:  # P(X >= hits) for X ~ Binomial(n, p)
        return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(hits, n + 1))

    low, high = 0.0, hits / n
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if tail(mid) < alpha else (low, mid)
    return low


def choose_thresholds(truth: Sequence[str], scored: Sequence[Scored], target_precision: float,
                      min_support: int = MIN_SUPPORT) -> dict[str, float | None]:
    """For each class, the lowest confidence whose predictions of that class have a precision lower bound
    (precision_lower_bound) of at least `target_precision` on val, counting only cut-offs with at least
    `min_support` predictions above them (None: no such cut-off)."""
    out: dict[str, float | None] = {}
    for label in LABELS:
        preds = sorted(((s.probs[label], t == label) for s, t in zip(scored, truth, strict=True) if s.label == label),
                       reverse=True)
        best = None
        hits = 0
        for k, (prob, hit) in enumerate(preds, start=1):
            hits += hit
            if k >= min_support and precision_lower_bound(hits, k) >= target_precision:
                best = prob
        out[label] = best
    return out


def pseudo_labels(scored: Sequence[Scored], thresholds: dict[str, float | None], floor: float = 0.0) -> list[Scored]:
    """Predictions that clear their class's threshold and `floor` (train.min_label_confidence: the dataset builder
    leaves out pseudo labels below it, so writing them would only inflate the round's count)."""
    return [s for s in scored
            if thresholds.get(s.label) is not None and s.probs[s.label] >= max(thresholds[s.label], floor)]


def cap_per_class(picks: Sequence[Scored], prior: dict[str, int]) -> list[Scored]:
    """At most ceil(share x len(picks)) pseudo labels of each class, its share being its part of the training
    labels in `prior`, the most confident first: pseudo labels never tilt the classes towards the model's
    favourite."""
    total = sum(prior.values())
    out: list[Scored] = []
    for label in LABELS:
        mine = sorted((s for s in picks if s.label == label), key=lambda s: -s.probs[label])
        cap = math.ceil(prior.get(label, 0) / total * len(picks)) if total else len(mine)
        out.extend(mine[:cap])
    return out


def paired_gain(truth: Sequence[str], before: Sequence[str], after: Sequence[str], *, n_boot: int = N_BOOT,
                seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(macro-F1 of `after` minus that of `before` on the same posts, the one-sided lower bound of that gain from
    a paired bootstrap: both predictions resampled on the same posts, so the posts' difficulty cancels)."""
    import numpy as np
    from bizsent.core.evaluate.metrics import macro_f1
    from bizsent.core.evaluate.paired import paired_differences, resample

    gain = macro_f1(list(truth), list(after)) - macro_f1(list(truth), list(before))
    _, draws = paired_differences(truth, before, after, resample(len(truth), n_boot=n_boot, seed=seed))
    return float(gain), float(np.quantile(draws, 1.0 - confidence))


def write_pseudo_labels(db: sqlite_utils.Database, picks: Sequence[Scored], labeler: str) -> int:
    with transaction(db):
        for s in picks:
            set_label(db, s.post_id, NewLabel(label=s.label, source="pseudo", labeler=labeler,
                                              confidence=round(s.probs[s.label], 4), split="train"))
    return len(picks)


def rollback_pseudo_labels(db: sqlite_utils.Database, labeler: str) -> int:
    """Delete the pseudo labels `labeler` wrote (a rejected round's); their history keeps the deletion."""
    ids = [r[0] for r in db.execute("SELECT id FROM labels WHERE source = 'pseudo' AND labeler = ?", [labeler])]
    with transaction(db):
        for label_id in ids:
            delete_label(db, label_id, changed_by=f"selftrain rollback of {labeler}")
    return len(ids)


def fixed_validation(pool: Sequence[Any], fraction: float, seed: int) -> tuple[list[int], str]:
    """Post ids of the self-training validation split and where its labels come from: a seeded, stratified draw
    of about `fraction` of the pool from its human-labelled examples (at most half of them, so human labels
    also train, and at most VAL_MAX, the size that resolves the gains a round is accepted on), or from its
    non-pseudo examples when there are fewer than MIN_HUMAN_VAL human ones."""
    human = [e for e in pool if e.origin == "human"]
    source = "human" if len(human) >= MIN_HUMAN_VAL else "api"
    candidates = human if source == "human" else [e for e in pool if e.origin != "pseudo"]
    target = min(max(3, round(fraction * len(pool))), len(candidates) // 2, VAL_MAX)
    rng = random.Random(seed)
    counts = Counter(e.label for e in candidates)
    picked: list[int] = []
    for label in LABELS:
        group = sorted((e for e in candidates if e.label == label), key=lambda e: e.post_id)
        if len(group) < 2:
            continue
        rng.shuffle(group)
        take = max(1, round(target * counts[label] / len(candidates)))
        picked.extend(e.post_id for e in group[:take])
    return sorted(picked), source


def round_bundle(db: sqlite_utils.Database, settings: Any, out_dir: Path, val_ids: set[int]) -> Path:
    """This round's bundle: the current training pool (with pseudo labels so far) minus the fixed validation
    posts and their reposts, the validation posts as the val split; dev and test as build_dataset makes them."""
    from bizsent.core.model.dataset import Dataset, build_dataset, export_bundle, manifest

    cfg = settings.train
    ds = build_dataset(db, settings.image_dir, cfg)
    pool = ds.train + ds.val
    val_groups = {e.group for e in pool if e.post_id in val_ids}  # a validation post's reposts stay out of train
    fixed = Dataset([e for e in pool if e.group not in val_groups], sorted(
        (e for e in pool if e.post_id in val_ids), key=lambda e: e.post_id), ds.test, ds.dropped, dev=ds.dev)
    fixed.manifest = {**manifest(fixed, cfg, seed=cfg.seed, balance=False),
                      "validation": "fixed for self-training (core.selftrain.fixed_validation)"}
    return export_bundle(fixed, out_dir, max_pixels=cfg.max_pixels)


def val_metrics(truth: Sequence[str], scored: Sequence[Scored]) -> Metrics:
    return evaluate(truth, [s.label for s in scored], probs=[s.probs for s in scored], n_boot=0)


def selftrain(db: sqlite_utils.Database, settings: Any, work_dir: Path, *, rounds: int = 3,
              target_precision: float = 0.9, min_support: int = MIN_SUPPORT, max_steps: int | None = None,
              load_in_4bit: bool | None = None, progress: Any = print) -> SelfTrainResult:
    """Round 0 trains on the current labels; every later round adds pseudo labels from the previous model.
    Rounds are chosen on the fixed validation split; the chosen round is evaluated on the test split once."""
    from bizsent.core.evaluate.report import evaluate_run
    from bizsent.core.model.dataset import read_split
    from bizsent.core.model.modeling import free_memory
    from bizsent.core.model.scoring import score
    from bizsent.core.model.training import score_inputs, train_run

    cfg = settings.train
    work_dir = Path(work_dir)
    result = SelfTrainResult()
    val_ids = _draw_validation(db, settings, work_dir, result, progress)
    pending_labeler: str | None = None  # the pseudo labels the next round trains with
    best_preds: list[str] = []  # the chosen round's validation predictions, the next round's paired baseline
    for n in range(rounds):
        bundle = round_bundle(db, settings, work_dir / f"round{n}" / "bundle", val_ids)
        unlabeled = _unlabeled(db, settings, progress) if n < rounds - 1 else []  # checked before training
        run_id, trained = train_run(db, settings, bundle=bundle, out_dir=work_dir / f"round{n}",
                                    name=f"selftrain-r{n}", max_steps=max_steps, load_in_4bit=load_in_4bit,
                                    keep_model=True)
        model = trained.model
        processor = trained_processor(cfg)
        val_rows = read_split(bundle, "val")
        truth = [r["label"] for r in val_rows]
        val_scored = score(model, processor, score_inputs(bundle, val_rows), batch_size=cfg.batch_size)
        metrics = val_metrics(truth, val_scored)
        thresholds = choose_thresholds(truth, val_scored, target_precision, min_support)
        previous = result.chosen
        train_rows = read_split(bundle, "train")
        this = Round(n, run_id, metrics.macro_f1, metrics.accuracy, thresholds, 0, len(train_rows))
        result.rounds.append(this)
        preds = [s.label for s in val_scored]
        if previous is not None:
            this.gain = paired_gain(truth, best_preds, preds, seed=cfg.seed)
        progress(f"round {n}: run {run_id}, validation macro-F1 {100 * this.macro_f1:.1f}%, "
                 f"accuracy {100 * this.accuracy:.1f}%, thresholds {thresholds}" + (
                     f", gain {100 * this.gain[0]:+.1f} points (95% lower bound {100 * this.gain[1]:+.1f})"
                     if this.gain else ""))
        if this.gain is not None and this.gain[1] <= 0:
            this.accepted = False
            if pending_labeler is not None:
                result.rolled_back = rollback_pseudo_labels(db, pending_labeler)
            result.stopped = (f"round {n}'s validation gain is within the noise of {len(truth)} posts (paired "
                              f"bootstrap); its {result.rolled_back} pseudo labels were deleted")
            del model, trained
            free_memory()
            break
        result.chosen, best_preds = this, preds
        if n == rounds - 1:
            result.stopped = f"reached {rounds} rounds"
            del model, trained
            free_memory()
            break
        prior = Counter(r["label"] for r in train_rows if r["origin"] != "pseudo")
        picks = cap_per_class(pseudo_labels(score(model, processor, unlabeled, batch_size=cfg.batch_size),
                                            thresholds, cfg.min_label_confidence), prior)
        del model, trained
        free_memory()  # the scoring model goes before the next round's training loads its own
        pending_labeler = f"selftrain:run{run_id}"
        this.pseudo_added = write_pseudo_labels(db, picks, pending_labeler)
        progress(f"round {n}: {this.pseudo_added} pseudo labels from {len(unlabeled)} unlabeled posts")
        if not picks:
            result.stopped = "no unlabeled post cleared the thresholds"
            break
    if result.chosen is not None:
        report, _, _ = evaluate_run(db, settings, result.chosen.run_id, split="test")
        result.test = report.model
        free_memory()
    progress(result.summary())
    return result


def _draw_validation(db: sqlite_utils.Database, settings: Any, work_dir: Path, result: SelfTrainResult,
                     progress: Any) -> set[int]:
    """Draw the fixed validation split into `result`, keep its ids in validation.json and say what it holds."""
    from bizsent.core.model.dataset import build_dataset

    cfg = settings.train
    first = build_dataset(db, settings.image_dir, cfg)
    result.val_posts, result.val_source = fixed_validation(first.train + first.val, cfg.val_fraction, cfg.seed)
    if not result.val_posts:
        raise BizsentError("too few training labels for a validation split; label more posts on the train split "
                           "before self-training")
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "validation.json").write_text(json.dumps({"post_ids": result.val_posts,
                                                          "source": result.val_source}), encoding="utf-8")
    progress(f"validation: {len(result.val_posts)} posts with {result.val_source} labels, fixed for every round"
             f" (at most {VAL_MAX}: enough to resolve a ~3-point gain; the other labels train)"
             + ("" if result.val_source == "human" else " (fewer than "
                f"{MIN_HUMAN_VAL} human train labels: label more posts on the train split)"))
    return set(result.val_posts)


def _unlabeled(db: sqlite_utils.Database, settings: Any, progress: Any) -> list:
    """The unlabeled posts a round will pseudo-label, those whose image file is gone left out and reported."""
    from bizsent.core.model.acquisition import unlabeled_inputs, with_images

    present, missing = with_images(unlabeled_inputs(db, settings.image_dir))
    if missing:
        progress(f"{len(missing)} unlabeled posts are left out: their image file is gone from the image cache "
                 f"(posts {', '.join(str(i.post_id) for i in missing[:5])}{'...' if len(missing) > 5 else ''}); "
                 "`bizsent scrape --images-only` refetches them")
    return present


def trained_processor(cfg: Any) -> Any:
    from bizsent.core.model.modeling import load_processor

    return load_processor(cfg.base_model, cfg.max_pixels)
