"""Baselines the model is compared with: VADER on the text (computed live), CryptoBERT when its weights are on
disk (otherwise the brief's published figures, marked as published), and the API labelers read from the store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.evaluate.metrics import Metrics, evaluate, from_confusion
from bizsent.core.labels import API_SOURCE, Label, labeler_name
from bizsent.core.store.posts import human_test

# VADER's conventional compound-score cut-offs.
VADER_POSITIVE = 0.05
VADER_NEGATIVE = -0.05


@dataclass(slots=True)
class Baseline:
    name: str
    kind: str  # live | published | store
    accuracy: float
    macro_f1: float | None
    n: int | None
    metrics: Metrics | None = None
    note: str = ""


# The brief's figures on the user's 107 hand-labelled posts (rows = truth bearish/neutral/bullish).
CRYPTOBERT_CONFUSION = [[13, 31, 14], [5, 17, 10], [0, 5, 12]]
PUBLISHED = (
    ("CryptoBERT", 0.393, "published (brief): recalls 22.4/53.1/70.6 on 107 posts"),
    ("VADER", 0.393, "published (brief)"),
    ("CryptoBERT+VADER ensemble", 0.411, "published (brief)"),
    ("agree/confidence rule", 0.458, "published (brief)"),
)


def vader_labels(texts: Sequence[str]) -> list[Label]:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise BizsentError("vaderSentiment is not installed; pip install vaderSentiment") from None
    analyzer = SentimentIntensityAnalyzer()
    out: list[Label] = []
    for text in texts:
        compound = analyzer.polarity_scores(text)["compound"]
        out.append("bullish" if compound >= VADER_POSITIVE else "bearish" if compound <= VADER_NEGATIVE else "neutral")
    return out


def vader_baseline(texts: Sequence[str], truth: Sequence[str]) -> Baseline:
    m = evaluate(truth, vader_labels(texts), n_boot=200)
    return Baseline("VADER (text only)", "live", m.accuracy, m.macro_f1, m.n, m)


def cryptobert_labels(texts: Sequence[str], weights: Path) -> list[Label]:
    """ElKulako/cryptobert from a local folder; its classes are Bearish/Neutral/Bullish."""
    if not (Path(weights) / "config.json").exists():
        raise BizsentError(f"{weights} has no config.json; pass the folder holding CryptoBERT's weights")
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(weights), truncation=True, max_length=128)
    return [r["label"].lower() for r in classify(list(texts), batch_size=32)]


def cryptobert_baseline(texts: Sequence[str], truth: Sequence[str], weights: Path | None) -> Baseline:
    if weights is None:
        m = from_confusion(CRYPTOBERT_CONFUSION)
        return Baseline("CryptoBERT", "published", m.accuracy, m.macro_f1, m.n, m, PUBLISHED[0][2])
    m = evaluate(truth, cryptobert_labels(texts, weights), n_boot=200)
    return Baseline("CryptoBERT", "live", m.accuracy, m.macro_f1, m.n, m)


def published_baselines() -> list[Baseline]:
    return [Baseline(name, "published", acc, None, 107, None, note) for name, acc, note in PUBLISHED[1:]]


def api_labeler_baselines(db: sqlite_utils.Database, truth: dict[int, str]) -> list[Baseline]:
    """Accuracy and macro-F1 of each API labeler (provider, model, prompt) on the human test posts it labelled."""
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for post, label, labeler in db.execute(
        "SELECT post_id, label, labeler FROM labels WHERE source = ?", [API_SOURCE]
    ).fetchall():
        if post in truth:
            pairs[labeler].append((truth[post], label))
    out = []
    for labeler, rows in sorted(pairs.items()):
        m = evaluate([t for t, _ in rows], [p for _, p in rows], n_boot=200)
        out.append(Baseline(labeler_name(API_SOURCE, labeler), "store", m.accuracy, m.macro_f1, m.n, m,
                            f"{m.n} of {len(truth)} test posts"))
    return out


def standing_baselines(db: sqlite_utils.Database) -> tuple[list[Baseline], int]:
    """The baselines that need no run, and the number of human test posts they are scored on: VADER (live) and
    the API labelers on the current human test labels (unsure ones left out, as a run's report leaves them), then
    the brief's published figures (its 107 posts). What Eval shows before the first run."""
    rows = db.execute(f"SELECT l.post_id, l.label, p.text FROM labels l JOIN posts p ON p.id = l.post_id"
                      f" WHERE {human_test('l')} AND NOT l.unsure ORDER BY l.post_id").fetchall()
    truth = {pid: label for pid, label, _ in rows}
    live = [vader_baseline([text or "" for *_, text in rows], list(truth.values()))] if rows else []
    return [*live, *api_labeler_baselines(db, truth), cryptobert_baseline([], [], None),
            *published_baselines()], len(rows)
