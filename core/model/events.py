"""Metric events: what training and evaluation report (step, loss, lr, epoch, throughput, eval metrics with the
confusion matrix), written to the store's `runs`/`metrics` tables and, on a remote pod, to a JSONL file that
the console imports. The console draws loss curves and confusion matrices from these rows only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlite_utils
from bizsent.core.store import now


@dataclass(slots=True)
class MetricEvent:
    kind: Literal["train", "eval"]
    step: int | None = None
    epoch: float | None = None
    loss: float | None = None
    lr: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    confusion: list[list[int]] | None = None
    data: dict[str, Any] = field(default_factory=dict)  # throughput, eval loss, per-class scores, split name...


Sink = Callable[[MetricEvent], None]


def create_run(db: sqlite_utils.Database, *, kind: str, name: str, base_model: str | None = None,
               params: dict | None = None, manifest: dict | None = None, job_id: int | None = None) -> int:
    cur = db.execute(
        "INSERT INTO runs (kind, name, base_model, params, manifest, state, job_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
        [kind, name, base_model, json.dumps(params or {}, default=str), json.dumps(manifest or {}), job_id, now()],
    )
    return cur.lastrowid


def finish_run(db: sqlite_utils.Database, run_id: int, state: str, adapter_path: str | None = None) -> None:
    db.execute("UPDATE runs SET state = ?, adapter_path = coalesce(?, adapter_path), finished_at = ? WHERE id = ?",
               [state, adapter_path, now(), run_id])


def end_runs_of_job(db: sqlite_utils.Database, job_id: int, state: str) -> None:
    """End the runs job `job_id` left running (its process is gone): `state`, not 'running' forever."""
    db.execute("UPDATE runs SET state = ?, finished_at = ? WHERE job_id = ? AND state = 'running'",
               [state, now(), job_id])


def reopen_run(db: sqlite_utils.Database, run_id: int) -> None:
    """A stopped run continues (its job resumed from a checkpoint): running again, its events so far kept."""
    db.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE id = ?", [run_id])


def record(db: sqlite_utils.Database, run_id: int, event: MetricEvent) -> int:
    cur = db.execute(
        "INSERT INTO metrics (run_id, kind, step, epoch, loss, lr, accuracy, macro_f1, confusion, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, event.kind, event.step, event.epoch, event.loss, event.lr, event.accuracy, event.macro_f1,
         json.dumps(event.confusion) if event.confusion is not None else None, json.dumps(event.data), now()],
    )
    return cur.lastrowid


def record_new(db: sqlite_utils.Database, run_id: int, events: Iterable[MetricEvent]) -> int:
    """Record the events the run does not hold yet: one event per (kind, step, split), so an event delivered twice
    (a reconnect, a restarted watcher of a remote run) is stored once. Events without a step are always new."""
    held = {(kind, step, json.loads(data or "{}").get("split")) for kind, step, data in db.execute(
        "SELECT kind, step, data FROM metrics WHERE run_id = ? AND step IS NOT NULL", [run_id]).fetchall()}
    count = 0
    for event in events:
        key = (event.kind, event.step, event.data.get("split"))
        if event.step is not None and key in held:
            continue
        held.add(key)
        record(db, run_id, event)
        count += 1
    return count


def set_params(db: sqlite_utils.Database, run_id: int, **values: Any) -> None:
    """Add or replace keys of a run's params (what a remote run learns as it goes: its pod, the adapter's hash)."""
    db.execute("UPDATE runs SET params = json_patch(params, ?) WHERE id = ?", [json.dumps(values, default=str), run_id])


def store_sink(db: sqlite_utils.Database, run_id: int) -> Sink:
    return lambda event: record(db, run_id, event)


def jsonl_sink(path: Path) -> Sink:
    """Append each event as one JSON line, flushed, so a tail on another machine sees it at once."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(event: MetricEvent) -> None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(event)) + "\n")

    return write


def tee(*sinks: Sink | None) -> Sink:
    live = [s for s in sinks if s is not None]

    def emit(event: MetricEvent) -> None:
        for sink in live:
            sink(event)

    return emit


def read_jsonl(path: Path) -> list[MetricEvent]:
    """Events from a JSONL file; a torn last line (the writer was killed mid-write) is skipped."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(MetricEvent(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return events


def import_events(db: sqlite_utils.Database, run_id: int, events: Iterable[MetricEvent]) -> int:
    count = 0
    for event in events:
        record(db, run_id, event)
        count += 1
    return count


def run_events(db: sqlite_utils.Database, run_id: int, kind: str | None = None) -> list[MetricEvent]:
    sql = "SELECT kind, step, epoch, loss, lr, accuracy, macro_f1, confusion, data FROM metrics WHERE run_id = ?"
    args: list[Any] = [run_id]
    if kind:
        sql += " AND kind = ?"
        args.append(kind)
    rows = db.execute(sql + " ORDER BY id", args).fetchall()
    return [MetricEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else None,
                        json.loads(r[8] or "{}")) for r in rows]
