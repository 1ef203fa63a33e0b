"""The newest pool-scoring job as its row says, and whether its process still runs: what the console shows of
`bizsent score-pool` (jobs.pool) while it scores."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils
from bizsent.core.label.ledger import pid_alive
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
    alive: bool

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running") and self.alive


def pool_job(db: sqlite_utils.Database) -> PoolJob | None:
    row = db.execute("SELECT id, params, state, done, total, error, pid FROM jobs WHERE kind = ? ORDER BY id DESC"
                     " LIMIT 1", [KIND]).fetchone()
    if row is None:
        return None
    jid, params, state, done, total, error, pid = row
    return PoolJob(jid, json.loads(params or "{}").get("run_id"), state, done or 0, total or 0, error,
                   pid_alive(pid))
