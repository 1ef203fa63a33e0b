"""The `pods` table: one row per pod bizsent asked RunPod for, written before the create call and given its
pod id the moment RunPod returns it, so no pod bizsent started is ever unknown to the database.

States: requested (create in flight) -> provisioning -> running -> stopped | terminated; failed (no pod was
created, or it never came up and was terminated); gone (RunPod no longer knows it, found by `reconcile`).
total_usd is the pod's cost so far (uptime x rate, or RunPod's bill once terminated): `bizsent costs` and the
summary read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils
from bizsent.core.store import now

LIVE = ("requested", "provisioning", "running", "stopped")
FINISHED = ("terminated", "failed", "gone")
STATE_OF = {"PROVISIONING": "provisioning", "STARTING": "provisioning", "RUNNING": "running", "EXITED": "stopped",
            "ERROR": "stopped", "TERMINATED": "terminated"}


@dataclass(frozen=True, slots=True)
class PodRow:
    id: int
    pod_id: str | None
    name: str
    run_name: str | None
    gpu: str | None
    cloud: str | None
    usd_per_hour: float | None
    state: str
    total_usd: float
    job_id: int | None
    created_at: str
    terminated_at: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PodRow:
        return cls(**{k: row[k] for k in cls.__slots__})


def insert_requested(db: sqlite_utils.Database, name: str, run_name: str, token: str, job_id: int | None) -> int:
    return db.execute("INSERT INTO pods (name, run_name, token, job_id, state, created_at, updated_at)"
                      " VALUES (?, ?, ?, ?, 'requested', ?, ?)",
                      [name, run_name, token, job_id, now(), now()]).lastrowid


def insert_found(db: sqlite_utils.Database, pod_id: str, name: str, gpu: str | None, usd_per_hour: float) -> int:
    """A pod of the account the database never started (an orphan, or the user's own) that bizsent is about to
    act on: its row is where its final cost is kept, so the spend counts it."""
    return db.execute("INSERT INTO pods (pod_id, name, gpu, usd_per_hour, state, error, created_at, updated_at)"
                      " VALUES (?, ?, ?, ?, 'running', 'not started by this database; found on the account', ?, ?)",
                      [pod_id, name, gpu, usd_per_hour, now(), now()]).lastrowid


def set_created(db: sqlite_utils.Database, row_id: int, pod_id: str, gpu: str, cloud: str,
                usd_per_hour: float) -> None:
    db.execute("UPDATE pods SET pod_id = ?, gpu = ?, cloud = ?, usd_per_hour = ?, state = 'provisioning',"
               " updated_at = ? WHERE id = ?", [pod_id, gpu, cloud, usd_per_hour, now(), row_id])


def set_state(db: sqlite_utils.Database, row_id: int, state: str, error: str | None = None) -> None:
    db.execute("UPDATE pods SET state = ?, error = coalesce(?, error), updated_at = ? WHERE id = ?",
               [state, error, now(), row_id])


def set_cost(db: sqlite_utils.Database, row_id: int, usd: float) -> None:
    """Costs only grow: a later, lower reading (a restarted container's uptime) never lowers what was seen."""
    db.execute("UPDATE pods SET total_usd = max(total_usd, ?), updated_at = ? WHERE id = ?", [usd, now(), row_id])


def finish(db: sqlite_utils.Database, row_id: int, state: str, usd: float | None, error: str | None = None) -> None:
    db.execute("UPDATE pods SET state = ?, total_usd = max(total_usd, coalesce(?, 0)), terminated_at = ?,"
               " error = coalesce(?, error), updated_at = ? WHERE id = ?", [state, usd, now(), error, now(), row_id])


def by_pod_id(db: sqlite_utils.Database) -> dict[str, PodRow]:
    return {r["pod_id"]: PodRow.from_row(r) for r in db.query("SELECT * FROM pods WHERE pod_id IS NOT NULL")}


def row_of(db: sqlite_utils.Database, pod_id: str) -> PodRow | None:
    rows = list(db.query("SELECT * FROM pods WHERE pod_id = ?", [pod_id]))
    return PodRow.from_row(rows[0]) if rows else None


def of_job(db: sqlite_utils.Database, job_id: int) -> PodRow | None:
    """The newest pod a job asked for (a resumed `train --pod` job reattaches to it instead of starting another)."""
    rows = list(db.query("SELECT * FROM pods WHERE job_id = ? ORDER BY id DESC LIMIT 1", [job_id]))
    return PodRow.from_row(rows[0]) if rows else None


def token_of(db: sqlite_utils.Database, pod_id: str) -> str | None:
    """The agent's bearer token for this pod (what `tail` and collecting the adapter need)."""
    row = db.execute("SELECT token FROM pods WHERE pod_id = ?", [pod_id]).fetchone()
    return row[0] if row else None


def spend(db: sqlite_utils.Database) -> tuple[int, float, int, float]:
    """(pods, their total USD, pods still live, the live ones' USD so far) over every pod bizsent started."""
    row = db.execute("SELECT count(*), coalesce(sum(total_usd), 0),"
                     f" sum(state IN {LIVE}), coalesce(sum(CASE WHEN state IN {LIVE} THEN total_usd END), 0)"
                     " FROM pods WHERE pod_id IS NOT NULL").fetchone()
    return int(row[0]), float(row[1]), int(row[2] or 0), float(row[3])
