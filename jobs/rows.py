"""Rows of the `jobs` table: what the console and `bizsent jobs` read to show a job's progress.

A job writes its own row (state, progress, done/failed/total, counts JSON, heartbeat, pid, host); readers never
talk to the process. Whether a row's process is alive is core.store.liveness's rule alone. counts holds: usd
(spent so far), estimate_usd, rate_per_min, eta_s, skipped and errors (reason -> posts), interrupted (requests
that may have been paid twice), mode.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.log import redact
from bizsent.core.store import now, transaction
from bizsent.core.store.liveness import HOST, is_dead


def _json(value: Any) -> str:
    """Params and counts as stored: error reasons in them may quote an SDK's message, so they are scrubbed."""
    return redact(json.dumps(value, sort_keys=True))


def _text(value: str | None) -> str | None:
    return redact(value) if value else value


def create(db: sqlite_utils.Database, kind: str, params: dict[str, Any], total: int, counts: dict[str, Any]) -> int:
    stamp = now()
    return db.execute(
        "INSERT INTO jobs (kind, params, state, total, counts, pid, host, created_at, started_at, heartbeat_at)"
        " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
        [kind, _json(params), total, _json(counts), os.getpid(), HOST, stamp, stamp, stamp],
    ).lastrowid


def queue(db: sqlite_utils.Database, kind: str, params: dict[str, Any]) -> int:
    """A job waiting for a process to run it (no pid, no heartbeat yet)."""
    return db.execute("INSERT INTO jobs (kind, params, state, created_at) VALUES (?, ?, 'queued', ?)",
                      [kind, _json(params), now()]).lastrowid


def set_pid(db: sqlite_utils.Database, job_id: int, pid: int) -> None:
    """The launched child's pid on this machine (jobs.control.launch); the row counts as starting until the
    child takes it over."""
    db.execute("UPDATE jobs SET pid = ?, host = ?, heartbeat_at = ? WHERE id = ?", [pid, HOST, now(), job_id])


def requeue(db: sqlite_utils.Database, job_id: int, reason: str) -> None:
    """Back to 'queued' (its process died); what it recorded stays, a resume continues from there."""
    db.execute("UPDATE jobs SET state = 'queued', error = ?, pid = NULL, host = NULL WHERE id = ?",
               [_text(reason), job_id])


def get(db: sqlite_utils.Database, job_id: int) -> dict[str, Any] | None:
    cur = db.execute("SELECT * FROM jobs WHERE id = ?", [job_id])
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip([d[0] for d in cur.description], row, strict=True))
    out["params"] = json.loads(out["params"] or "{}")
    out["counts"] = json.loads(out["counts"] or "{}")
    return out


def listing(db: sqlite_utils.Database, kind_prefix: str = "") -> list[dict[str, Any]]:
    """Job rows, oldest first: every kind, or those whose kind starts with `kind_prefix`."""
    ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE kind LIKE ? ORDER BY id", [kind_prefix + "%"])]
    return [get(db, i) for i in ids]  # type: ignore[misc]


def listing_active(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """The rows that may have a process or a remote batch at work ('queued' or 'running'), oldest first."""
    ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY id")]
    return [get(db, i) for i in ids]  # type: ignore[misc]


class JobBusy(BizsentError):
    """Another live process runs this job: leave its row alone."""


def take_over(db: sqlite_utils.Database, job_id: int, total: int) -> None:
    """This process now runs the job (a resume after a crash or kill). Atomic: of two processes starting the
    same job at once, the second is refused (JobBusy), so a job's claims always belong to one process."""
    stamp = now()
    with transaction(db):
        row = db.execute("SELECT state, pid, host, heartbeat_at FROM jobs WHERE id = ?", [job_id]).fetchone()
        if row and row[0] in ("cancelled", "done"):  # a cancel that came before the launched child started
            raise BizsentError(f"job {job_id} is {row[0]}; start a new one instead")
        if row and row[0] == "running" and not mine(row[1], row[2]) and not is_dead(row[0], row[3], row[1], row[2]):
            raise JobBusy(f"job {job_id} is already running (pid {row[1]} on {row[2] or HOST}); cancel it with"
                          f" `bizsent jobs cancel {job_id}`")
        db.execute("UPDATE jobs SET state = 'running', pid = ?, host = ?, total = ?, error = NULL,"
                   " finished_at = NULL, started_at = coalesce(started_at, ?), heartbeat_at = ? WHERE id = ?",
                   [os.getpid(), HOST, total, stamp, stamp, job_id])


def mine(pid: int | None, host: str | None) -> bool:
    """Is a row's process this one?"""
    return pid == os.getpid() and (host or HOST) == HOST


def progress(db: sqlite_utils.Database, job_id: int, *, done: int, failed: int, total: int,
             counts: dict[str, Any]) -> str:
    """Write progress and heartbeat; return the row's state (someone may have cancelled the job)."""
    finished = done + failed
    db.execute(
        "UPDATE jobs SET done = ?, failed = ?, total = ?, progress = ?, counts = ?, heartbeat_at = ? WHERE id = ?",
        [done, failed, total, finished / total if total else 1.0, _json(counts), now(), job_id],
    )
    return db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()[0]


def beat(db: sqlite_utils.Database, job_id: int) -> str | None:
    """The heartbeat alone: this process is alive (its claims in the ledger stay live). Only while the row is
    still this process's: a job another process took over is not kept alive by the one it replaced. Returns
    the row's state (someone may have cancelled the job), None when the row is no longer ours."""
    db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND pid = ? AND coalesce(host, ?) = ?",
               [now(), job_id, os.getpid(), HOST, HOST])
    row = db.execute("SELECT state, pid, host FROM jobs WHERE id = ?", [job_id]).fetchone()
    return row[0] if row and mine(row[1], row[2]) else None


def finish(db: sqlite_utils.Database, job_id: int, state: str, error: str | None = None) -> None:
    db.execute("UPDATE jobs SET state = ?, error = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?",
               [state, _text(error), now(), now(), job_id])


def set_remote(db: sqlite_utils.Database, job_id: int, remote_id: str, params: dict[str, Any]) -> None:
    db.execute("UPDATE jobs SET remote_id = ?, params = ? WHERE id = ?",
               [remote_id, _json(params), job_id])
