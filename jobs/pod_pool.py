"""Pool scoring on a RunPod GPU as a job of kind 'pod-pool' (`bizsent score-pool --pod`, and `p` in the console for
a run trained on RunPod): the pool posts the run has not scored yet go up with their images at the run's pixel
budget (never full size), the pod scores them with the same engine as `bizsent score-pool` (jobs.pod_work), and
the predictions with their embeddings are merged into the store here, so the active-learning queue and Spot-check
read them as they read a local run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.model.events import MetricEvent
from bizsent.core.model.pool import resolve_run, unscored_inputs, write_pool_predictions
from bizsent.core.model.scoring import ScoreInput
from bizsent.core.pods import api, plan
from bizsent.core.pods.channel import AgentChannel, AgentHealth
from bizsent.core.pods.launch import PodHandle
from bizsent.core.pods.payload import Payload, prepare_payload
from bizsent.jobs.pod_eval import pod_work_name, run_adapter, run_cfg
from bizsent.jobs.pod_task import TaskPlan, plan_queued
from bizsent.jobs.pod_watch import JobWriter
from bizsent.jobs.pod_work import POOL_SCORES

POD_POOL = "pod-pool"
MERGE_BATCH = 256  # predictions a transaction when the pod's scores are merged


def pool_params(run_id: int, *, limit: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    if limit is not None and limit < 1:
        raise BizsentError("--limit must be at least 1")
    return {"run_id": run_id, "limit": limit, "batch_size": batch_size}


def on_runpod(info: dict) -> bool:
    """Was the run trained on RunPod (jobs.pod_run records where)? Its pool is then scored there too."""
    return info["params"].get("where") == "runpod"


def export_pool(items: list[ScoreInput], folder: Path, max_pixels: int) -> Path:
    """posts.jsonl and each post's image at the run's pixel budget (core.model.dataset.save_model_image), the
    folder that goes up as the bundle's `pool`."""
    from bizsent.core.model.dataset import save_model_image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for item in items:
        image = folder / "images" / f"{item.post_id}.jpg"
        if not image.exists():
            save_model_image(item.image_path, image, max_pixels)
        lines.append(json.dumps({"post_id": item.post_id, "text": item.text, "subject": item.subject,
                                 "image": f"pool/images/{image.name}"}))
    (folder / "posts.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


class PoolTask:
    """Pool scoring, as jobs.pod_task runs it: no run of its own, the scores as the result."""

    def __init__(self, db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> None:
        p = job["params"]
        self.db, self.settings, self.limit = db, settings, p.get("limit")
        self.info = resolve_run(db, p["run_id"])
        self.adapter = run_adapter(self.info)
        self.batch_size = p.get("batch_size")
        self.name = pod_work_name("pool", job["id"], self.info["name"])
        self.folder = settings.data_dir / "runs" / self.name

    def todo(self) -> tuple[list[ScoreInput], int, int]:
        items, pool, before = unscored_inputs(self.db, self.settings.image_dir, self.info["id"])
        if pool == 0:
            raise BizsentError("the pool is empty: every candidate post (ok image + text) has a human label or "
                               "skip; add posts with `bizsent scrape` or `bizsent demo`")
        present = [item for item in items if Path(item.image_path).is_file()]
        return present[:self.limit] if self.limit else present, pool, before

    def plan(self, client: api.RunpodClient) -> TaskPlan:
        todo, pool, before = self.todo()
        if not todo:
            raise BizsentError(f"run {self.info['id']} has scored every pool post with an image ({before}/{pool});"
                               " nothing to send to a pod")
        pod_plan = plan.plan_pod(client, self.settings, self.name, 0, 0.0, scored_posts=len(todo))
        line = (f"score {len(todo)} pool posts with run {self.info['id']} ({self.info['name']}); {before}/{pool} of"
                " the pool are scored already; images go up at the run's pixel budget")
        return TaskPlan([line], pod_plan, len(todo))

    def payload(self) -> Payload:
        from bizsent.core.model.run_info import read_run_info, run_pixel_budget

        todo, _, _ = self.todo()
        pool = export_pool(todo, self.folder / "pool", run_pixel_budget(read_run_info(self.adapter)))
        args = {"batch_size": self.batch_size} if self.batch_size else {}
        return prepare_payload(self.settings, Path(self.info["params"]["bundle"]), self.folder / "payload",
                               name=self.name, cfg=run_cfg(self.settings, self.info), task="score-pool",
                               load_in_4bit=self.info["params"].get("load_in_4bit"), args=args, splits=(),
                               extra={"adapter": self.adapter, "pool": pool})

    def open_runs(self, resumed: bool) -> None:
        """The run exists already: its predictions are what this task adds."""

    def started(self, handle: PodHandle) -> None:
        """Nothing to record: the pod row names this job."""

    def run_of(self, event: MetricEvent) -> int | None:
        return None

    def collect(self, channel: AgentChannel, writer: JobWriter, health: AgentHealth) -> str:
        from bizsent.core.model.score_file import read_scores

        result = self.folder / "result"
        sha = channel.download_result(result, "pool scores")  # verified against the pod's sha256
        scored = read_scores(result / POOL_SCORES)
        for start in range(0, len(scored), MERGE_BATCH):
            write_pool_predictions(self.db, self.info["id"], scored[start:start + MERGE_BATCH])
        writer.progress.step = len(scored)
        writer.progress.extra["result_sha256"] = sha
        channel.mark_collected(sha)
        _, pool, before = unscored_inputs(self.db, self.settings.image_dir, self.info["id"])
        return (f"run {self.info['id']} ({self.info['name']}): {len(scored)} pool posts scored on the pod; "
                f"{before}/{pool} of the pool now have a prediction")

    def end_runs(self, state: str) -> None:
        """No run of its own to end: what was merged stays (each prediction is whole)."""


def plan_for_console(db: sqlite_utils.Database, settings: Settings, run: int | None = None
                     ) -> tuple[int, TaskPlan] | None:
    """The console's `p` for a run trained on RunPod (the newest finished run by default): a queued pod-pool row and
    its plan, for the user to confirm (`start_planned`) or not (`drop_planned`); None for a run of this machine."""

    info = resolve_run(db, run)
    if not on_runpod(info):
        return None
    return plan_queued(db, settings, POD_POOL, pool_params(info["id"]), lambda job: PoolTask(db, settings, job))


def start_planned(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, log_dir: Path,
                  job_id: int) -> int:
    """Run the confirmed row detached (`bizsent score-pool --pod --job ID --yes`); its pid."""
    from bizsent.jobs.control import start

    return start(db, db_path, config_path, job_id, log_dir)


def drop_planned(db: sqlite_utils.Database, job_id: int) -> None:
    from bizsent.jobs import rows

    rows.finish(db, job_id, "cancelled", "not confirmed; no pod was started")


def run(db: sqlite_utils.Database, settings: Settings, job_id: int, **kwargs: Any) -> Any:
    """Run (or resume) pod-pool job `job_id` in this process (jobs.pod_task.run_task's confirm and report)."""
    from bizsent.jobs.pod_task import run_task

    return run_task(db, settings, job_id, lambda job: PoolTask(db, settings, job), kinds=(POD_POOL,), **kwargs)
