"""Self-training on a RunPod GPU as a job of kind 'pod-selftrain' (`bizsent selftrain --pod`): the rounds run where
the GPU is, with the same code as `bizsent selftrain` (core.model.selftrain, run by jobs.pod_work) on a snapshot of
the store: posts, their images at the training pixel budget (never full size), labels and skips. Rounds are chosen
on the fixed human validation split there, and the chosen round is scored on the test split once, at the end.

The snapshot holds no jobs, pods, ledger, runs or notes: nothing of the user's but the data the rounds train and
score on (the human test labels included: the last step scores them). What comes back is merged here: each
round's run with its metric events, the chosen round's adapter, its test predictions, and the pseudo labels the
accepted rounds wrote (posts keep their ids in the snapshot, so they land on the same posts).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.model.events import MetricEvent, create_run, finish_run
from bizsent.core.pods import api, plan
from bizsent.core.pods.channel import AgentChannel, AgentHealth
from bizsent.core.pods.launch import PodHandle
from bizsent.core.pods.payload import Payload, prepare_payload
from bizsent.core.store import transaction
from bizsent.jobs.pod_eval import pod_work_name
from bizsent.jobs.pod_task import TaskPlan
from bizsent.jobs.pod_watch import JobWriter

POD_SELFTRAIN = "pod-selftrain"
STORE = "store"  # in the bundle: the snapshot (bizsent.db, images/); in the result: the pod's store after the rounds
COPIED = ("images", "posts", "labels", "skips")  # the tables the rounds read, in foreign-key order


def selftrain_params(*, rounds: int, precision: float, min_support: int, max_steps: int | None) -> dict[str, Any]:
    if rounds < 1:
        raise BizsentError("--rounds must be at least 1")
    return {"rounds": rounds, "precision": precision, "min_support": min_support, "max_steps": max_steps}


def snapshot(db: sqlite_utils.Database, settings: Settings, folder: Path) -> Path:
    """`folder`/bizsent.db with the tables the rounds read, and `folder`/images/<image id>.jpg at the training
    pixel budget for every usable image (the rows point at them)."""
    from bizsent.core.model.dataset import save_model_image
    from bizsent.core.store import db_path, open_db

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "images").mkdir(parents=True)
    with contextlib.closing(open_db(folder / "bizsent.db")) as snap:
        snap.execute("ATTACH DATABASE ? AS laptop", [f"file:{db_path(db)}?mode=ro"])
        with transaction(snap):
            for table in COPIED:
                snap.execute(f"INSERT INTO main.{table} SELECT * FROM laptop.{table}")
        snap.execute("DETACH DATABASE laptop")
        for image_id, path in snap.execute("SELECT id, path FROM images WHERE status = 'ok'").fetchall():
            source = path if Path(path).is_absolute() else settings.image_dir / path
            if Path(source).is_file():
                save_model_image(str(source), folder / "images" / f"{image_id}.jpg", settings.train.max_pixels)
                snap.execute("UPDATE images SET path = ? WHERE id = ?", [f"{image_id}.jpg", image_id])
            else:
                snap.execute("UPDATE images SET status = 'missing', reason = 'not in the image cache' WHERE id = ?",
                             [image_id])
    (folder / "manifest.json").write_text(json.dumps({"store_snapshot": True}), encoding="utf-8")
    return folder


POD_PATHS = ("bundle", "out_dir")  # run params that name folders on the pod: kept as pod_*, never taken for paths here


def merge_back(db: sqlite_utils.Database, pod_store: Path, adapter: Path | None, chosen_run: int | None,
               job_id: int | None, prefix: str, result: Path) -> dict[int, int]:
    """The pod's runs (each new there), their metric events and predictions, and its pseudo labels, into the
    store; the chosen round's run gets `adapter`. Each run records `result`, the folder here where the pod's
    result landed. Returns pod run id -> run id here."""
    pod = sqlite3.connect(f"file:{pod_store}?mode=ro", uri=True)
    try:
        runs = pod.execute("SELECT id, kind, name, base_model, params, manifest, state FROM runs"
                           " ORDER BY id").fetchall()
        metrics = pod.execute("SELECT run_id, kind, step, epoch, loss, lr, accuracy, macro_f1, confusion, data,"
                              " created_at FROM metrics ORDER BY id").fetchall()
        predictions = pod.execute("SELECT run_id, post_id, label, probs, latency_ms, created_at FROM predictions"
                                  " ORDER BY id").fetchall()
        pseudo = pod.execute("SELECT post_id, label, source, labeler, confidence, sarcastic, rationale, split,"
                             " created_at, unsure, changed_by, sampling FROM labels WHERE source = 'pseudo'").fetchall()
    finally:
        pod.close()
    mapping: dict[int, int] = {}
    with transaction(db):
        for rid, kind, name, base, params, manifest, state in runs:
            here = {("pod_" + k if k in POD_PATHS else k): v for k, v in json.loads(params or "{}").items()}
            mapping[rid] = create_run(db, kind=kind, name=f"{prefix}-{name}", base_model=base,
                                      params={**here, "where": "runpod", "pod_run_id": rid, "result": str(result)},
                                      manifest=json.loads(manifest or "{}"), job_id=job_id)
            finish_run(db, mapping[rid], state, str(adapter) if rid == chosen_run and adapter else None)
        for row in metrics:
            db.execute("INSERT INTO metrics (run_id, kind, step, epoch, loss, lr, accuracy, macro_f1, confusion, data,"
                       " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [mapping[row[0]], *row[1:]])
        for row in predictions:
            db.execute("INSERT INTO predictions (run_id, post_id, label, probs, latency_ms, created_at) VALUES"
                       " (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, post_id) DO NOTHING", [mapping[row[0]], *row[1:]])
        for row in pseudo:  # the labeler names the round's run (core.model.selftrain): its id here
            labeler = re.sub(r"run(\d+)", lambda m: f"run{mapping.get(int(m[1]), m[1])}", row[3])
            db.execute("INSERT INTO labels (post_id, label, source, labeler, confidence, sarcastic, rationale, split,"
                       " created_at, unsure, changed_by, sampling) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [*row[:3], labeler, *row[4:]])
    return mapping


class SelftrainTask:
    """Self-training, as jobs.pod_task runs it: the rounds' runs come back with the result and are merged."""

    def __init__(self, db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> None:
        self.db, self.settings, self.job_id, self.params = db, settings, job["id"], job["params"]
        self.name = pod_work_name("selftrain", job["id"], "pod")
        self.folder = settings.data_dir / "runs" / self.name
        self.merged: dict[int, int] = {}

    def plan(self, client: api.RunpodClient) -> TaskPlan:
        from bizsent.core.model.dataset import build_dataset
        from bizsent.core.model.pool import pool_ids

        ds = build_dataset(self.db, self.settings.image_dir, self.settings.train)
        rounds, cfg = self.params["rounds"], self.settings.train
        examples = len(ds.train) + len(ds.val)
        if not examples:
            raise BizsentError("no training labels to self-train from; label posts first (`bizsent label`)")
        steps = self.params.get("max_steps")
        epochs = min(cfg.epochs, steps * cfg.batch_size * cfg.grad_accum / examples) if steps else cfg.epochs
        scored = rounds * (len(ds.val) + len(pool_ids(self.db))) + len(ds.test)
        pod_plan = plan.plan_pod(client, self.settings, self.name, examples * rounds, epochs, scored_posts=scored)
        line = (f"self-train up to {rounds} rounds on {examples} labelled posts (validation fixed, precision target"
                f" {self.params['precision']:g}), the chosen round scored on the test split once; a snapshot of the"
                " posts, labels and images at the pixel budget goes up")
        return TaskPlan([line], pod_plan, rounds)

    def payload(self) -> Payload:
        store = snapshot(self.db, self.settings, self.folder / STORE)
        args = {k: v for k, v in self.params.items() if v is not None}
        return prepare_payload(self.settings, store, self.folder / "payload", name=self.name, task="selftrain",
                               args=args, splits=(), extra={STORE: store})

    def open_runs(self, resumed: bool) -> None:
        """The rounds' runs are made on the pod; they are merged at the end."""

    def started(self, handle: PodHandle) -> None:
        """Nothing to record yet: the pod row names this job."""

    def run_of(self, event: MetricEvent) -> int | None:
        return None

    def collect(self, channel: AgentChannel, writer: JobWriter, health: AgentHealth) -> str:
        result = self.folder / "result"
        sha = channel.download_result(result, "self-training result")  # verified against the pod's sha256
        summary = json.loads((result / "summary.json").read_text(encoding="utf-8"))
        chosen = summary.get("chosen_run")
        adapter = result / "adapter" if (result / "adapter").is_dir() else None
        self.merged = merge_back(self.db, result / STORE / "bizsent.db", adapter, chosen, self.job_id,
                                 f"pod{self.job_id}", result)
        writer.progress.extra["result_sha256"] = sha
        channel.mark_collected(sha)
        runs = ", ".join(str(self.merged[r]) for r in sorted(self.merged))
        here = self.merged.get(chosen) if chosen is not None else None
        return (f"{summary['summary']}; runs {runs} stored here" + (f", the chosen round is run {here}"
                                                                     f" (adapter {adapter})" if here else ""))

    def end_runs(self, state: str) -> None:
        """No run here before the merge: a failed job leaves the store as it was."""


def run(db: sqlite_utils.Database, settings: Settings, job_id: int, **kwargs: Any) -> Any:
    """Run (or resume) pod-selftrain job `job_id` in this process (jobs.pod_task.run_task's confirm and report)."""
    from bizsent.jobs.pod_task import run_task

    return run_task(db, settings, job_id, lambda job: SelftrainTask(db, settings, job), kinds=(POD_SELFTRAIN,),
                    **kwargs)
