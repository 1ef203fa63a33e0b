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


def two_scored_runs(db: sqlite_utils.Database, image_dir: Path, tmp: Path) -> tuple[dict[int, int], int, int]:
    """Two runs for comparing, on fakes.tui.build_store's posts (post_no -> id, run A, run B).

    Test: posts 1-5 human test labels, 6 an unsure one; A scored 1-5 and 7 (no truth), B scored 1-4 and 6.
    Dev: posts 8-11 human train labels; A's bundle has 8-11 in dev, B's 8-10; both scored 8-11."""
    from fakes.tui import build_store

    store = build_store(db, image_dir)
    for no, label in {1: "bearish", 2: "bearish", 3: "neutral", 4: "bullish", 5: "bullish"}.items():
        human(db, store[no], label)
    set_label(db, store[6], NewLabel(label="neutral", source="human", split="test", labeler="human", unsure=True))
    for no, label in {8: "bearish", 9: "neutral", 10: "bullish", 11: "bullish"}.items():
        human(db, store[no], label, split="train")
    a = add_run(db, name="zero-shot", kind="eval", bundle=dev_bundle(tmp / "ba", [store[n] for n in (8, 9, 10, 11)]))
    b = add_run(db, name="tuned", bundle=dev_bundle(tmp / "bb", [store[n] for n in (8, 9, 10)]))
    bear, neu, bull = probs(0.8, 0.1, 0.1), probs(0.1, 0.8, 0.1), probs(0.1, 0.1, 0.8)
    add_predictions(db, a, {store[1]: bear, store[2]: neu, store[3]: bull, store[4]: bull, store[5]: bull,
                            store[7]: bear, store[8]: neu, store[9]: neu, store[10]: bull, store[11]: bull})
    add_predictions(db, b, {store[1]: bear, store[2]: bear, store[3]: neu, store[4]: bull, store[6]: neu,
                            store[8]: bear, store[9]: neu, store[10]: neu, store[11]: bear})
    return store, a, b
