"""Launching, cancelling and resuming jobs of any kind (jobs.kinds): what `bizsent jobs` and the console call.

Launching queues a row and starts `bizsent <the kind's command> --job ID` detached (jobs.launch): the child
takes the row over and runs it exactly as the same command typed in a terminal would, so the CLI and the
console start every kind the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.label.planning import Params
from bizsent.core.model.events import end_runs_of_job
from bizsent.core.store import transaction
from bizsent.jobs import labeling, rows
from bizsent.jobs.states import ACTIVE, RESUMABLE_FROM, kind_of, status


def log_path(log_dir: Path | str, kind: str, job_id: int) -> Path:
    return Path(log_dir) / f"{kind}-job-{job_id}.log"


def start(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, job_id: int,
          log_dir: Path | str) -> int:
    """Run job row `job_id` detached with its kind's command; returns the child's pid."""
    from bizsent.jobs.launch import start_detached

    job = _job(db, job_id)
    pid = start_detached(db_path, config_path, kind_of(job["kind"]).command(job_id),
                         log_path(log_dir, job["kind"], job_id))
    rows.set_pid(db, job_id, pid)
    return pid


def launch(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, kind: str,
           params: dict[str, Any], log_dir: Path | str) -> tuple[int, int]:
    """Queue a `kind` job with `params` and run it detached: (job id, pid). A launch that fails is written to
    the row ('failed', why) and raised as one line."""
    kind_of(kind)
    job_id = rows.queue(db, kind, params)
    try:
        return job_id, start(db, db_path, config_path, job_id, log_dir)
    except BizsentError as exc:
        rows.finish(db, job_id, "failed", str(exc))
        raise


def launch_label(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None,
                 params: Params, log_dir: Path | str) -> tuple[int, int]:
    """Queue a labeling job and run it detached (`bizsent label --job ID --yes`); returns (job id, pid).

    The caller has already shown the estimate and got the user's confirmation."""
    job_id = labeling.queue(db, params)
    return job_id, start(db, db_path, config_path, job_id, log_dir)


def resume(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, job_id: int,
           log_dir: Path | str) -> int:
    """Run a stopped job again, detached, from where it stopped; returns the child's pid. The row is reserved
    first (atomically: of two resumes at once, the second is refused), then the child is started."""
    with transaction(db):
        job = _job(db, job_id)
        now = status(job)
        if not kind_of(job["kind"]).resumable(job):
            raise BizsentError(f"job {job_id} ({job['kind']}) cannot be resumed; start a new one")
        if now not in RESUMABLE_FROM:
            raise BizsentError(f"job {job_id} is {now}; only a dead, queued or failed job can be resumed")
        rows.reserve(db, job_id)
    try:
        return start(db, db_path, config_path, job_id, log_dir)
    except BizsentError as exc:
        rows.requeue(db, job_id, f"resume failed: {exc}")
        raise


def cancel(db: sqlite_utils.Database, settings: Any, job_id: int) -> str:
    """Cancel a job of any kind: its kind's cancel (a remote batch at the provider) or the state flag, which the
    running work checks between steps (or its heartbeat turns into an interrupt)."""
    job = _job(db, job_id)
    now = status(job)
    if now not in ACTIVE and now != "dead":
        return f"job {job_id} is already {now}"
    kind = kind_of(job["kind"])
    if now == "dead":  # no process is left to end the runs it owned: they end with the job, here
        end_runs_of_job(db, job_id, "cancelled")
    if kind.cancel is not None:
        return kind.cancel(db, settings, job)
    rows.finish(db, job_id, "cancelled", "cancelled by the user")
    return f"job {job_id} cancelled"


def _job(db: sqlite_utils.Database, job_id: int) -> dict[str, Any]:
    job = rows.get(db, job_id)
    if job is None:
        raise BizsentError(f"no job {job_id}; see `bizsent jobs`")
    return job
