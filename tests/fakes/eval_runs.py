"""Runs, metric events and predictions written straight into a test store (no model needed), for the Eval and
Spot-check screens' tests. Posts come from fakes.tui.build_store."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils
from bizsent.core.labels import LABELS
from bizsent.core.model.events import MetricEvent, create_run, finish_run, record
from bizsent.core.store import now
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel


def add_run(db: sqlite_utils.Database, name: str = "run-a", kind: str = "train", state: str = "done",
            bundle: str = "/nowhere/bundle") -> int:
    run_id = create_run(db, kind=kind, name=name, base_model="/nowhere/tiny", params={"bundle": bundle})
    if state != "running":
        finish_run(db, run_id, state, adapter_path="/nowhere/adapter")
    return run_id


def add_train_steps(db: sqlite_utils.Database, run_id: int, n: int) -> None:
    for step in range(1, n + 1):
        record(db, run_id, MetricEvent("train", step=step, loss=2.0 / (1 + step / 4), lr=1e-4))


def add_eval(db: sqlite_utils.Database, run_id: int, confusion: list[list[int]], *, step: int | None = None,
             split: str = "test") -> int:
    n = sum(map(sum, confusion))
    acc = sum(confusion[k][k] for k in range(3)) / n
    return record(db, run_id, MetricEvent("eval", step=step, accuracy=acc, macro_f1=acc * 0.9, confusion=confusion,
                                          data={"split": split, "n": n}))


def probs(bear: float, neu: float, bull: float) -> dict[str, float]:
    return dict(zip(LABELS, (bear, neu, bull), strict=True))


def add_predictions(db: sqlite_utils.Database, run_id: int, by_post: dict[int, dict[str, float]]) -> None:
    for pid, p in by_post.items():
        db.execute("INSERT INTO predictions (run_id, post_id, label, probs, latency_ms, created_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", [run_id, pid, max(p, key=p.get), json.dumps(p), 5.0, now()])


def human(db: sqlite_utils.Database, pid: int, label: str, split: str = "test", sarcastic: bool = False) -> int:
    return set_label(db, pid, NewLabel(label=label, source="human", split=split, labeler="human",
                                       sarcastic=sarcastic))


def dev_bundle(folder: Path, post_ids: list[int]) -> str:
    """A bundle folder holding only a dev split of these posts (what compare reads of a bundle)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dev.jsonl").write_text("".join(json.dumps({"post_id": pid}) + "\n" for pid in post_ids))
    return str(folder)
