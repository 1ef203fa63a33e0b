"""Pool scoring as a job: the console queues a `score-pool` row and starts `bizsent score-pool --job ID`
detached (jobs.control.launch); the child writes progress and heartbeats to the row (done/total), which the
Spot-check screen reads. Cancelling the row stops the child after the batch in hand; a rerun (or
`bizsent jobs resume ID`) continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.model.pool import PoolReport, resolve_run, score_pool
from bizsent.jobs import rows
from bizsent.jobs.states import status

KIND = "score-pool"


def running_job(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The newest score-pool job whose process is alive (one at a time: two would score the same posts)."""
    for job in reversed(rows.listing(db, KIND)):
        if status(job) in ("starting", "running"):
            return job
    return None


def queue(db: sqlite_utils.Database, run: int | str | None = None, limit: int | None = None,
          batch_size: int | None = None) -> int:
    """A score-pool row for the run (checked now: a bad run fails here, not in a detached child)."""
    busy = running_job(db)
    if busy is not None:
        raise BizsentError(f"the pool is already being scored (job {busy['id']}, pid {busy['pid']})")
    params = {"run_id": resolve_run(db, run)["id"], "limit": limit}
    return rows.queue(db, KIND, {**params, "batch_size": batch_size} if batch_size else params)


def run_job(db: sqlite_utils.Database, settings: Any, job_id: int, batch_size: int | None = None) -> PoolReport:
    """Run (or resume) a score-pool row in this process; whatever stops it is written to the row."""
    from bizsent.jobs.heartbeat import progress_until_cancelled, running

    job = rows.of_kind(db, job_id, KIND)
    with running(db, job_id) as beat:
        progress = progress_until_cancelled(db, job_id, beat)
        report = score_pool(db, settings, job["params"].get("run_id"),
                            batch_size=batch_size or job["params"].get("batch_size"),
                            limit=job["params"].get("limit"), progress=progress)
        if report.stopped:
            raise Cancelled(f"job {job_id} cancelled: {report.summary()}")
    return report


def launch(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, log_dir: Path | str,
           run: int | None = None) -> tuple[int, int, int]:
    """Check the run, queue a row and start `bizsent score-pool --job ID` detached: (job id, pid, run id)."""
    from bizsent.jobs.control import start

    job_id = queue(db, run)
    try:
        pid = start(db, db_path, config_path, job_id, log_dir)
    except BizsentError as exc:
        rows.finish(db, job_id, "failed", str(exc))
        raise
    return job_id, pid, rows.get(db, job_id)["params"]["run_id"]  # type: ignore[index]
