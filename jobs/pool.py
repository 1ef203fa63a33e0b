"""Pool scoring as a job: the console queues a `score-pool` row and starts `bizsent score-pool --job ID`
detached; the child writes progress and heartbeats to the row (done/total), which the Spot-check screen reads.
Cancelling the row stops the child after the batch in hand; a rerun continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.label.ledger import pid_alive
from bizsent.core.model.pool import PoolReport, resolve_run, score_pool
from bizsent.jobs import rows

KIND = "score-pool"


def running_job(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The newest score-pool job whose process is alive (one at a time: two would score the same posts)."""
    for job in reversed(rows.listing(db, KIND)):
        if job["state"] in ("queued", "running") and pid_alive(job["pid"]):
            return job
    return None


def run_job(db: sqlite_utils.Database, settings: Any, job_id: int, batch_size: int | None = None) -> PoolReport:
    """Run (or resume) a queued score-pool row in this process; whatever stops it is written to the row."""
    job = rows.get(db, job_id)
    if job is None or job["kind"] != KIND:
        raise BizsentError(f"job {job_id} is not a score-pool job; see `bizsent batches` for labeling jobs")
    rows.take_over(db, job_id, total=0)

    def progress(done: int, total: int) -> bool:
        return rows.progress(db, job_id, done=done, failed=0, total=total, counts={}) != "cancelled"

    try:
        report = score_pool(db, settings, job["params"].get("run_id"), batch_size=batch_size,
                            limit=job["params"].get("limit"), progress=progress)
    except BizsentError as exc:
        rows.finish(db, job_id, "failed", str(exc))
        raise
    except BaseException as exc:
        rows.finish(db, job_id, "failed", f"{type(exc).__name__}: {exc}"[:300])
        raise
    rows.finish(db, job_id, "cancelled" if report.stopped else "done", None)
    return report


def launch(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, log_dir: Path | str,
           run: int | None = None) -> tuple[int, int, int]:
    """Check the run, queue a row and start `bizsent score-pool --job ID` detached: (job id, pid, run id)."""
    from bizsent.jobs.launch import start_detached

    busy = running_job(db)
    if busy is not None:
        raise BizsentError(f"the pool is already being scored (job {busy['id']}, pid {busy['pid']})")
    info = resolve_run(db, run)
    job_id = rows.queue(db, KIND, {"run_id": info["id"]})
    try:
        pid = start_detached(db_path, config_path, ["score-pool", "--job", str(job_id)],
                             Path(log_dir) / f"score-pool-job-{job_id}.log")
    except BizsentError as exc:
        rows.finish(db, job_id, "failed", str(exc))
        raise
    rows.set_pid(db, job_id, pid)
    return job_id, pid, info["id"]
