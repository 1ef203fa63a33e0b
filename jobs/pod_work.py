"""The pod's side of every scoring task (`bizsent pod-work`, which the in-pod agent runs for a job.json whose task is
not train, core/pods/agent/trainer.py): the same engine as on the laptop, on the uploaded bundle.

Each task writes its metric events to runs/<name>/events.jsonl (the agent serves them to the laptop's watch, so
an evaluation's matrix fills in live there) and its scores to runs/<name>/result (the agent packs that folder for
the laptop, which merges it into its store). The result is written as result.part and renamed at the end, so the
agent never packs half of it. A line per batch on stdout (the pod's train.log) is progress for both brakes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.model.events import Sink, jsonl_sink
from bizsent.core.model.score_file import append_scores
from bizsent.core.pods.agent.config import Refused
from bizsent.core.pods.agent.job import read_job

POOL_POSTS = "pool/posts.jsonl"  # in the bundle: the pool posts to score, images at the run's pixel budget
POOL_SCORES = "pool.jsonl"  # in the result: the pool's scores with packed embeddings
ADAPTER = "adapter"  # in the bundle: the run's adapter (absent for a zero-shot evaluation only)


def pod_run_info(job: dict, bundle: Path, target: str, adapter: Path | None = None) -> dict:
    """The run to score with, in core.evaluate.report.run_row's shape: the uploaded adapter (or `adapter`), or none
    (zero-shot)."""
    adapter = (adapter or bundle / ADAPTER) if target != "zero-shot" else None
    return {"id": None, "name": target, "base_model": job["base_model"],
            "adapter_path": str(adapter) if adapter else None,
            "params": {"train": job["train"], "load_in_4bit": job["load_in_4bit"]}}


def say(line: str) -> None:
    print(f"bizsent pod-work: {line}", flush=True)


def eval_task(settings: Any, bundle: Path, job: dict, out: Path, events: Sink, adapter: Path | None = None) -> None:
    """Each target (zero-shot: the base model alone; model: with the adapter) on the split, live events tagged
    with the target, its scores in result/<target>.jsonl."""
    from bizsent.core.evaluate.report import score_split, split_rows

    split = job["args"]["split"]
    rows = split_rows(bundle, split)
    for target in job["args"]["targets"]:
        say(f"scoring the {split} split ({len(rows)} posts) with {target}")

        def live(event: Any, target: str = target) -> None:
            events(event)
            say(f"{target}: {event.data['n']}/{event.data['of']} posts scored")

        scored = score_split(pod_run_info(job, bundle, target, adapter), settings, bundle, rows, split, live=live,
                             target=target)
        append_scores(out / f"{target}.jsonl", scored)


def pool_task(settings: Any, bundle: Path, job: dict, out: Path, events: Sink) -> None:
    """The pool posts of the bundle, with embeddings, batch by batch into result/pool.jsonl."""
    import json

    from bizsent.core.model.loading import load_for_run
    from bizsent.core.model.scoring import ScoreInput, score

    rows = [json.loads(line) for line in (bundle / POOL_POSTS).read_text(encoding="utf-8").splitlines() if line]
    items = [ScoreInput(r["post_id"], r["text"], str(bundle / r["image"]), r.get("subject", ""), prepared=True)
             for r in rows]
    model, processor = load_for_run(pod_run_info(job, bundle, "model"), settings)
    size = max(1, int(job["args"].get("batch_size") or settings.train.batch_size))
    for start in range(0, len(items), size):
        append_scores(out / POOL_SCORES, score(model, processor, items[start:start + size], batch_size=size,
                                                embeddings=True))
        say(f"pool: {min(start + size, len(items))}/{len(items)} posts scored")


def selftrain_task(settings: Any, bundle: Path, job: dict, out: Path, events: Sink) -> None:
    """core.model.selftrain on the uploaded store snapshot (jobs.pod_selftrain); the store after the rounds, the
    chosen round's adapter and a summary into the result."""
    import json

    from bizsent.core.model.selftrain import selftrain
    from bizsent.core.store import open_db

    store = bundle / "store"
    local = settings.model_copy(update={"data": settings.data.model_copy(update={"dir": store, "db": "bizsent.db",
                                                                                "images": "images"})})
    a = job["args"]
    db = open_db(store / "bizsent.db")
    try:
        result = selftrain(db, local, bundle.parent / "runs" / job["name"] / "rounds", rounds=int(a["rounds"]),
                           target_precision=float(a["precision"]), min_support=int(a["min_support"]),
                           max_steps=a.get("max_steps"), load_in_4bit=job["load_in_4bit"], progress=say)
        (out / "store").mkdir()
        db.execute("VACUUM INTO ?", [str(out / "store" / "bizsent.db")])
    finally:
        db.close()
    chosen = result.chosen
    if chosen is not None:
        adapter = db_adapter(out / "store" / "bizsent.db", chosen.run_id)
        if adapter is not None:
            shutil.copytree(adapter, out / ADAPTER)
    (out / "summary.json").write_text(json.dumps({"summary": result.summary(),
                                                  "chosen_run": chosen.run_id if chosen else None}),
                                      encoding="utf-8")


def db_adapter(store: Path, run_id: int) -> Path | None:
    import sqlite3

    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT adapter_path FROM runs WHERE id = ?", [run_id]).fetchone()
    finally:
        con.close()
    return Path(row[0]) if row and row[0] else None


TASKS = {"eval": eval_task, "score-pool": pool_task, "selftrain": selftrain_task}


def run_pod_work(settings: Any, workdir: Path) -> Path:
    """Run the task job.json names; returns its result folder."""
    try:
        job = read_job(workdir / "uploads" / "job.json")
    except Refused as exc:
        raise BizsentError(f"job.json: {exc}") from None
    task = TASKS.get(job["task"])
    if task is None and job["task"] != "train":
        raise BizsentError(f"bizsent pod-work does not run {job['task']!r} jobs")
    run_dir = workdir / "runs" / job["name"]
    part, result = run_dir / "result.part", run_dir / "result"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    events = jsonl_sink(run_dir / "events.jsonl")
    if task is None:  # right after training: the new adapter, and its evaluation beside it
        shutil.copytree(run_dir / ADAPTER, part / ADAPTER)
        eval_task(settings, workdir / "bundle", job, part, events, adapter=run_dir / ADAPTER)
    else:
        task(settings, workdir / "bundle", job, part, events)
    part.rename(result)
    return result
