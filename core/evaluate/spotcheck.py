"""Spot-checking a run's predictions: each predicted post with its image, text, API labels and human label,
ordered pool posts first and by the model's doubt; and the human label an answer writes.

A new human label from a spot-check goes to the training pool, never the test split: this list is ordered by the
model's doubt, not sampled at random (core.label.human). A post that already has a human label keeps its split.

Posts with a human TEST label are not listed: correcting a test label after seeing the model's answer moves the
test set towards the model. A test label is corrected blind, in the Label screen (Posts, `enter`), which shows
the post without any model or API answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlite_utils
from bizsent.core.labels import API_SOURCE, LABELS, origin_sql
from bizsent.core.store.posts import human_test
from bizsent.core.store.records import NewLabel

SPOT_ORDERS = ("uncertainty", "disagreement")
SAMPLING = "spot-check"


@dataclass(frozen=True, slots=True)
class ApiLabel:
    source: str
    labeler: str
    label: str
    confidence: float | None


@dataclass(frozen=True, slots=True)
class HumanLabel:
    """A post's human label as it was before a spot-check touched it (what `u` puts back)."""

    id: int
    label: str
    split: str
    labeler: str
    sarcastic: bool
    unsure: bool


@dataclass(frozen=True, slots=True)
class SpotItem:
    post_id: int
    label: str  # the model's
    probs: dict[str, float]
    subject: str
    text: str
    image_path: str | None
    image_status: str
    image_reason: str
    api: tuple[ApiLabel, ...] = ()
    human: HumanLabel | None = None
    margin: float = field(init=False)
    disagreement: float | None = field(init=False)

    def __post_init__(self) -> None:
        top = sorted(self.probs.values(), reverse=True) + [0.0, 0.0]
        object.__setattr__(self, "margin", top[0] - top[1])
        # The probability the model puts away from the API's answer, averaged over API labelers (None: no API label).
        away = [1.0 - self.probs.get(a.label, 0.0) for a in self.api]
        object.__setattr__(self, "disagreement", sum(away) / len(away) if away else None)


def order_items(items: Sequence[SpotItem], order: str) -> list[SpotItem]:
    """Pool posts (no human label) first, then posts a human has labelled; within each, uncertainty: smallest
    margin between the top two classes first; disagreement: the most probability away from the API labels
    first, posts without an API label last. Ties by post id, so the order is stable."""
    if order == "uncertainty":
        return sorted(items, key=lambda it: (it.human is not None, it.margin, it.post_id))
    if order == "disagreement":
        return sorted(items, key=lambda it: (it.human is not None, it.disagreement is None,
                                             -(it.disagreement or 0.0), it.post_id))
    raise ValueError(f"unknown order {order!r}; use one of {SPOT_ORDERS}")


def spot_items(db: sqlite_utils.Database, run_id: int) -> list[SpotItem]:
    """Every prediction of the run with the post's text, image, API labels and human label (unordered), except
    on posts with a human test label (the module docstring says why)."""
    api: dict[int, list[ApiLabel]] = {}
    human: dict[int, HumanLabel] = {}
    for pid, source, labeler, label, conf in db.execute(
        f"SELECT l.post_id, {origin_sql('l')}, l.labeler, l.label, l.confidence FROM labels l"
        " JOIN predictions pr ON pr.post_id = l.post_id AND pr.run_id = ?"
        " WHERE l.source = ? ORDER BY l.labeler", [run_id, API_SOURCE]
    ):
        api.setdefault(pid, []).append(ApiLabel(source, labeler, label, conf))
    for lid, pid, label, split, labeler, sarcastic, unsure in db.execute(
        "SELECT l.id, l.post_id, l.label, l.split, l.labeler, l.sarcastic, l.unsure FROM labels l"
        " JOIN predictions pr ON pr.post_id = l.post_id AND pr.run_id = ?"
        " WHERE l.source = 'human' ORDER BY l.id", [run_id]
    ):
        human[pid] = HumanLabel(lid, label, split, labeler, bool(sarcastic), bool(unsure))
    items = []
    for pid, label, probs, subject, text, status, reason, path in db.execute(
        "SELECT pr.post_id, pr.label, pr.probs, p.subject, p.text, coalesce(i.status, 'none'),"
        " coalesce(i.reason, ''), coalesce(i.path, i.thumb_path) FROM predictions pr"
        " JOIN posts p ON p.id = pr.post_id LEFT JOIN images i ON i.id = p.image_id WHERE pr.run_id = ?"
        f" AND NOT EXISTS (SELECT 1 FROM labels t WHERE t.post_id = pr.post_id AND {human_test('t')})", [run_id]
    ):
        parsed = json.loads(probs)
        items.append(SpotItem(pid, label, {k: float(parsed.get(k, 0.0)) for k in LABELS}, subject or "", text or "",
                              path, status, reason, tuple(api.get(pid, ())), human.get(pid)))
    return items


def predicted_runs(db: sqlite_utils.Database) -> list[tuple[int, str, int]]:
    """(run id, name, predictions) of every run with predictions, newest first."""
    return db.execute(
        "SELECT r.id, r.name, count(*) FROM runs r JOIN predictions p ON p.run_id = r.id GROUP BY r.id"
        " ORDER BY r.id DESC"
    ).fetchall()


def answer_label(label: str, before: HumanLabel | None) -> NewLabel:
    """The human label a spot-check answer writes: a new one goes to train; a correction keeps the earlier
    label's labeler, split, flags and recorded sampling."""
    if before is None:
        return NewLabel(label=label, source="human", labeler="human", split="train", sampling=SAMPLING)
    return NewLabel(label=label, source="human", labeler=before.labeler, split=before.split,
                    sarcastic=before.sarcastic, unsure=before.unsure, sampling=None)


def restored_label(before: HumanLabel) -> NewLabel:
    """The human label an undo puts back."""
    return NewLabel(label=before.label, source="human", split=before.split, labeler=before.labeler,
                    sarcastic=before.sarcastic, unsure=before.unsure)
