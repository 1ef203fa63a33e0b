"""The newest pool-scoring job as its row says, and whether its process still runs: what the console shows of
`bizsent score-pool` (jobs.pool) while it scores."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from bizsent.jobs import views
from bizsent.jobs.pool import KIND


@dataclass(frozen=True, slots=True)
class PoolJob:
    """The newest `score-pool` job, as its row says."""

    id: int
    run_id: int | None
    state: str
    done: int
    total: int
    error: str | None
    alive: bool  # its process is starting or running (jobs.states.status)

    @property
    def active(self) -> bool:
        return self.alive


def pool_job(db: sqlite_utils.Database) -> PoolJob | None:
    jobs = views.listing(db, KIND)
    if not jobs:
        return None
    job = jobs[0]
    return PoolJob(job.id, job.params.get("run_id"), job.status, job.done, job.total, job.error,
                   job.status in ("starting", "running"))
