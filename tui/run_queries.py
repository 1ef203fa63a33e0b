"""Read-only SQL and computations behind the Eval and Spot-check screens: runs, their metric events, the run's
report against the human test set, and its predictions ordered for spot-checking.

Like tui.queries, everything here runs in worker threads on a connection of their own, never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from bizsent.core.labels import LABELS, NON_API_SOURCES
from bizsent.core.model.events import MetricEvent

if TYPE_CHECKING:
    from bizsent.core.evaluate.report import Report

SPOT_ORDERS = ("uncertainty", "disagreement")


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    kind: str
    name: str
    state: str
    created: str
    best_f1: float | None
    base_model: str | None
    adapter_path: str | None
    bundle: str | None


def runs_list(db: sqlite_utils.Database) -> list[RunRow]:
    """Every run, newest first, with its best macro-F1 over all evaluation events (validation or test)."""
    out = []
    for rid, kind, name, state, created, best, base, adapter, params in db.execute(
        "SELECT r.id, r.kind, r.name, r.state, r.created_at,"
        " (SELECT max(m.macro_f1) FROM metrics m WHERE m.run_id = r.id AND m.kind = 'eval'),"
        " r.base_model, r.adapter_path, r.params FROM runs r ORDER BY r.id DESC"
    ):
        bundle = json.loads(params or "{}").get("bundle")
        out.append(RunRow(rid, kind, name, state, created, best, base, adapter, bundle))
    return out


def metric_events(db: sqlite_utils.Database, run_id: int, after_id: int = 0) -> list[tuple[int, MetricEvent]]:
    """The run's metric rows with id > `after_id` (the poll's cursor), oldest first: one indexed range read."""
    rows = db.execute(
        "SELECT id, kind, step, epoch, loss, lr, accuracy, macro_f1, confusion, data FROM metrics"
        " WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id]
    ).fetchall()
    return [(r[0], MetricEvent(r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]) if r[8] else None,
                               json.loads(r[9] or "{}"))) for r in rows]


def model_unavailable(run: RunRow) -> str:
    """Why `bizsent eval` cannot score this run here ('' when it can): a missing adapter, base model or bundle."""
    if run.adapter_path and not Path(run.adapter_path).exists():
        return f"run {run.id}'s adapter {run.adapter_path} is not on this machine"
    if run.kind == "train" and not run.adapter_path:
        return f"run {run.id} has no adapter yet ({run.state}); evaluate it when training is done"
    if not run.bundle or not (Path(run.bundle) / "test.jsonl").exists():
        return f"run {run.id}'s dataset bundle {run.bundle or '(none)'} is not on this machine"
    base = run.base_model or ""
    if Path(base).expanduser().exists():
        return ""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(base, "config.json"), str):
            return ""
    except Exception:  # an invalid repo name or a broken cache: the model is not usable either way
        pass
    return f"base model {base or '(none)'} of run {run.id} is neither a folder here nor in the Hugging Face cache"


def report_key(db: sqlite_utils.Database, run_id: int) -> tuple:
    """Changes whenever the run's report could: new predictions or a changed human test label."""
    preds = db.execute("SELECT count(*), max(created_at) FROM predictions WHERE run_id = ?", [run_id]).fetchone()
    truth = db.execute("SELECT count(*), max(created_at), total(id) FROM labels"
                       " WHERE source = 'human' AND split = 'test'").fetchone()
    return (run_id, *preds, *truth)


def run_report(db: sqlite_utils.Database, run_id: int, name: str) -> Report | None:
    """The run's predictions scored against the current human test labels, next to the baselines and the API
    labelers on the same posts (bootstrap intervals included: seconds of CPU, so callers cache it).

    None when the run has no prediction on any human test post yet."""
    from bizsent.core.evaluate.report import (
        build_report,  # numpy and the metrics stack: loaded on first use, in a worker
    )
    from bizsent.core.model.scoring import Scored

    test_rows = [
        {"post_id": pid, "label": label, "sarcastic": bool(sarcastic), "text": text}
        for pid, label, sarcastic, text in db.execute(
            "SELECT l.post_id, l.label, l.sarcastic, p.text FROM labels l JOIN posts p ON p.id = l.post_id"
            " JOIN predictions pr ON pr.post_id = l.post_id AND pr.run_id = ?"
            " WHERE l.source = 'human' AND l.split = 'test' ORDER BY l.post_id", [run_id])
    ]
    if not test_rows:
        return None
    scored = [Scored(pid, label, json.loads(probs), latency or 0.0) for pid, label, probs, latency in db.execute(
        "SELECT post_id, label, probs, latency_ms FROM predictions WHERE run_id = ?", [run_id])]
    return build_report(name, test_rows, scored, db=db, info={"run_id": run_id})


# -- spot-check --------------------------------------------------------------------------------------------------


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
    """Every prediction of the run with the post's text, image, API labels and human label (unordered)."""
    api: dict[int, list[ApiLabel]] = {}
    human: dict[int, HumanLabel] = {}
    marks = ",".join("?" * len(NON_API_SOURCES))
    for pid, source, labeler, label, conf in db.execute(
        "SELECT l.post_id, l.source, l.labeler, l.label, l.confidence FROM labels l"
        " JOIN predictions pr ON pr.post_id = l.post_id AND pr.run_id = ?"
        f" WHERE l.source NOT IN ({marks}) ORDER BY l.source, l.labeler", [run_id, *NON_API_SOURCES]
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
        " JOIN posts p ON p.id = pr.post_id LEFT JOIN images i ON i.id = p.image_id WHERE pr.run_id = ?", [run_id]
    ):
        parsed = json.loads(probs)
        items.append(SpotItem(pid, label, {k: float(parsed.get(k, 0.0)) for k in LABELS}, subject or "", text or "",
                              path, status, reason, tuple(api.get(pid, ())), human.get(pid)))
    return items


def predicted_runs(db: sqlite_utils.Database) -> list[tuple[int, str, int]]:
    """(id, name, predictions) of every run with predictions, newest first."""
    return db.execute(
        "SELECT r.id, r.name, count(*) FROM runs r JOIN predictions p ON p.run_id = r.id GROUP BY r.id"
        " ORDER BY r.id DESC"
    ).fetchall()


@dataclass(frozen=True, slots=True)
class PoolJob:
    """The newest `score-pool` job, as its row says."""

    id: int
    run_id: int | None
    state: str
    done: int
    total: int
    error: str | None
    alive: bool  # its process is starting or running (jobs.kinds.status)

    @property
    def active(self) -> bool:
        return self.alive


def pool_job(db: sqlite_utils.Database) -> PoolJob | None:
    from bizsent.jobs import views
    from bizsent.jobs.pool import KIND

    jobs = views.listing(db, KIND)
    if not jobs:
        return None
    job = jobs[0]
    return PoolJob(job.id, job.params.get("run_id"), job.status, job.done, job.total, job.error,
                   job.status in ("starting", "running"))
