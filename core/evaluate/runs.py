"""Training and evaluation runs as the store has them: the list, a run's metric events after a cursor, whether
`bizsent eval` could score a run on this machine, and the run's report against the current human test labels.

The console's Eval screen asks these in worker threads, each on a connection of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from bizsent.core.model.events import MetricEvent
from bizsent.core.model.modeling import model_here
from bizsent.core.store.liveness import is_dead
from bizsent.core.store.posts import HUMAN_TEST, human_test

DEAD = "dead"  # a run's shown state when its job's process is gone

if TYPE_CHECKING:
    from bizsent.core.evaluate.result import Report


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
    best_split: str | None = None  # the split of the evaluation that gave best_f1 (val, dev, test)
    best_n: int | None = None  # and how many posts it scored


def runs_list(db: sqlite_utils.Database) -> list[RunRow]:
    """Every run, newest first, with its best macro-F1 over all evaluation events (validation, dev or test), the
    split that gave it and that split's size.

    A 'running' run whose job's process is gone (core.store.liveness, the one rule) is 'dead': a killed training
    never gets to write its run's end, so its stored state would say running forever."""
    out = []
    for rid, kind, name, state, created, best, base, adapter, params, job_state, beat, pid, host in db.execute(
        "SELECT r.id, r.kind, r.name, r.state, r.created_at,"
        " (SELECT json_array(m.macro_f1, json_extract(m.data, '$.split'), json_extract(m.data, '$.n'))"
        "  FROM metrics m WHERE m.run_id = r.id AND m.kind = 'eval' AND m.macro_f1 IS NOT NULL"
        "  AND coalesce(json_extract(m.data, '$.live'), 0) = 0"  # progress of an evaluation is no result
        "  ORDER BY m.macro_f1 DESC, m.id DESC LIMIT 1),"
        " r.base_model, r.adapter_path, r.params, j.state, j.heartbeat_at, j.pid, j.host"
        " FROM runs r LEFT JOIN jobs j ON j.id = r.job_id ORDER BY r.id DESC"
    ):
        if state == "running" and job_state is not None and is_dead(job_state, beat, pid, host):
            state = DEAD
        bundle = json.loads(params or "{}").get("bundle")
        f1, split, n = json.loads(best) if best else (None, None, None)
        out.append(RunRow(rid, kind, name, state, created, f1, base, adapter, bundle, split, n))
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
    if model_here(run.base_model or ""):
        return ""
    return (f"base model {run.base_model or '(none)'} of run {run.id} is neither a folder here nor in the Hugging"
            " Face cache")


def report_key(db: sqlite_utils.Database, run_id: int) -> tuple:
    """Changes whenever the run's report could: new predictions or a changed human test label."""
    preds = db.execute("SELECT count(*), max(created_at) FROM predictions WHERE run_id = ?", [run_id]).fetchone()
    truth = db.execute(f"SELECT count(*), max(created_at), total(id) FROM labels WHERE {HUMAN_TEST}").fetchone()
    return (run_id, *preds, *truth)


def run_report(db: sqlite_utils.Database, run_id: int, name: str) -> Report | None:
    """The run's predictions scored against the current human test labels (unsure ones left out, as the dataset
    builder leaves them out of the test split), next to the baselines and the API labelers on the same posts
    (bootstrap intervals included: seconds of CPU, so callers cache it).

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
            f" WHERE {human_test('l')} AND NOT l.unsure ORDER BY l.post_id", [run_id])  # as the bundle's test split
    ]
    if not test_rows:
        return None
    scored = [Scored(pid, label, json.loads(probs), latency or 0.0) for pid, label, probs, latency in db.execute(
        "SELECT post_id, label, probs, latency_ms FROM predictions WHERE run_id = ?", [run_id])]
    return build_report(name, test_rows, scored, db=db, info={"run_id": run_id})


def test_scoring_line(db: sqlite_utils.Database, run_id: int) -> str:
    """"This test set has been scored N times (runs ...)": what the console says before scoring a run on test."""
    row = db.execute("SELECT json_extract(manifest, '$.hashes.test') FROM runs WHERE id = ?", [run_id]).fetchone()
    from bizsent.core.evaluate.report import test_scorings  # numpy-free, but report.py imports the metrics stack

    scored = test_scorings(db, row[0] if row else None)
    runs = ", ".join(str(r) for r in scored["runs"]) or "none"
    return (f"This test set has been scored {scored['times']} time{'s' * (scored['times'] != 1)} (runs {runs}); "
            f"{scored['all_test_evaluations']} test evaluations in this store.")
