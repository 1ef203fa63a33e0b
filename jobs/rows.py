"""Rows of the `jobs` table: what the console and `bizsent jobs` read to show a job's progress.

A job writes its own row (state, progress, done/failed/total, counts JSON, heartbeat, pid, host); readers never
talk to the process. Whether a row's process is alive is core.store.liveness's rule alone. counts holds: usd
(spent so far), estimate_usd, rate_per_min, eta_s, skipped and errors (reason -> posts), interrupted (requests
that may have been paid twice), mode.

Fencing: a row's `epoch` grows by one on every take-over, and the process that runs the job holds the epoch it
took (its owner token). Its writes to the row (progress, heartbeat, finish, requeue) and to the ledger
(core.label.ledger: claim, sent, complete) carry that epoch and are refused once it is stale (Superseded), so a
process that was stopped (Ctrl-Z, a stall) and resumed elsewhere can no longer write as the job's owner: it
stops sending, leaves its in-flight requests marked maybe paid, and exits with one line. Writes by others (a
user's cancel, a requeue of a dead row) carry no epoch; a requeue by anyone ends the current owner's epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError, StoreError, Superseded
from bizsent.core.log import redact
from bizsent.core.store import check_identity, now, transaction
from bizsent.core.store.liveness import HOST, is_dead


def _json(value: Any) -> str:
    """Params and counts as stored: error reasons in them may quote an SDK's message, so they are scrubbed."""
    return redact(json.dumps(value, sort_keys=True))


def _text(value: str | None) -> str | None:
    return redact(value) if value else value


FIRST_EPOCH = 1  # a row created running by its own process


def create(db: sqlite_utils.Database, kind: str, params: dict[str, Any], total: int, counts: dict[str, Any]) -> int:
    """A new row, running in this process under epoch FIRST_EPOCH."""
    stamp = now()
    return db.execute(
        "INSERT INTO jobs (kind, params, state, total, counts, pid, host, created_at, started_at, heartbeat_at,"
        f" epoch) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, {FIRST_EPOCH})",
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


# A cancel is final: the new state unless the row is cancelled already (SQL, with the new state as its one `?`).
_UNLESS_CANCELLED = "CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE ? END"


def _fenced(db: sqlite_utils.Database, job_id: int, epoch: int | None, sql: str, args: list[Any]) -> None:
    """Run `sql` (an UPDATE of job `job_id` ending in WHERE id = ?); with an epoch, only while it is current,
    else Superseded."""
    if epoch is None:
        db.execute(sql, [*args, job_id])
        return
    if db.execute(sql + " AND epoch = ?", [*args, job_id, epoch]).rowcount == 0:
        raise Superseded(job_id)


def reserve(db: sqlite_utils.Database, job_id: int) -> None:
    """A resume's claim on a stopped row, inside the caller's transaction: 'queued' under this process until
    the launched child takes it over (it shows 'starting', so a second resume is refused). Ends the epoch of
    whatever process ran it before."""
    db.execute("UPDATE jobs SET state = 'queued', pid = ?, host = ?, heartbeat_at = ?, epoch = epoch + 1"
               " WHERE id = ?", [os.getpid(), HOST, now(), job_id])


def requeue(db: sqlite_utils.Database, job_id: int, reason: str, epoch: int | None = None) -> None:
    """Back to 'queued' (its process died or was interrupted); what it recorded stays, a resume continues from
    there. Ends the current epoch: a process still running the job can no longer write as its owner."""
    _fenced(db, job_id, epoch, f"UPDATE jobs SET state = {_UNLESS_CANCELLED}, error = CASE WHEN state = 'cancelled'"
                               " THEN error ELSE ? END, pid = NULL, host = NULL, epoch = epoch + 1 WHERE id = ?",
            ["queued", _text(reason)])


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


def take_over(db: sqlite_utils.Database, job_id: int, total: int) -> int:
    """This process now runs the job (a resume after a crash or kill); returns its epoch (the owner token).
    Atomic: of two processes starting the same job at once, the second is refused (JobBusy), so a job's claims
    always belong to one process, and the one it replaced is fenced off by the new epoch."""
    stamp = now()
    with transaction(db):
        row = db.execute("SELECT state, pid, host, heartbeat_at FROM jobs WHERE id = ?", [job_id]).fetchone()
        if row and row[0] in ("cancelled", "done"):  # a cancel that came before the launched child started
            raise BizsentError(f"job {job_id} is {row[0]}; start a new one instead")
        if row and row[0] == "running" and not mine(row[1], row[2]) and not is_dead(row[0], row[3], row[1], row[2]):
            raise JobBusy(f"job {job_id} is already running (pid {row[1]} on {row[2] or HOST}); cancel it with"
                          f" `bizsent jobs cancel {job_id}`")
        db.execute("UPDATE jobs SET state = 'running', pid = ?, host = ?, total = ?, error = NULL,"
                   " finished_at = NULL, started_at = coalesce(started_at, ?), heartbeat_at = ?, epoch = epoch + 1"
                   " WHERE id = ?", [os.getpid(), HOST, total, stamp, stamp, job_id])
        return db.execute("SELECT epoch FROM jobs WHERE id = ?", [job_id]).fetchone()[0]


def mine(pid: int | None, host: str | None) -> bool:
    """Is a row's process this one?"""
    return pid == os.getpid() and (host or HOST) == HOST


def of_kind(db: sqlite_utils.Database, job_id: int, *kinds: str) -> dict[str, Any]:
    """Job `job_id`, which a command of one of `kinds` is about to run; one line when it is not such a job."""
    job = get(db, job_id)
    if job is None or job["kind"] not in kinds:
        raise BizsentError(f"job {job_id} is not a {' or '.join(kinds)} job; see `bizsent jobs`")
    return job


def progress(db: sqlite_utils.Database, job_id: int, *, done: int, failed: int, total: int,
             counts: dict[str, Any], epoch: int | None = None) -> str:
    """Write progress and heartbeat; return the row's state (someone may have cancelled the job). With the
    owner's epoch, Superseded once another process took the job over."""
    finished = done + failed
    _fenced(db, job_id, epoch,
            "UPDATE jobs SET done = ?, failed = ?, total = ?, progress = ?, counts = ?, heartbeat_at = ? WHERE id = ?",
            [done, failed, total, finished / total if total else 1.0, _json(counts), now()])
    return db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()[0]


def beat(db: sqlite_utils.Database, job_id: int, epoch: int | None = None) -> str | None:
    """The heartbeat alone: this process is alive (its claims in the ledger stay live). Only while the row is
    still this process's (its epoch, or without one its pid and host): a job another process took over is not
    kept alive by the one it replaced. Returns the row's state (someone may have cancelled the job), None when
    the row is no longer ours."""
    if epoch is not None:
        if not db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND epoch = ?",
                          [now(), job_id, epoch]).rowcount:
            return None
        return db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()[0]
    db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND pid = ? AND coalesce(host, ?) = ?",
               [now(), job_id, os.getpid(), HOST, HOST])
    row = db.execute("SELECT state, pid, host FROM jobs WHERE id = ?", [job_id]).fetchone()
    return row[0] if row and mine(row[1], row[2]) else None


def finish(db: sqlite_utils.Database, job_id: int, state: str, error: str | None = None,
           epoch: int | None = None) -> None:
    """How the job ended. With the owner's epoch, Superseded (and the row left to its new owner) when stale.
    A cancel is final: what the work says after it (failed, done) leaves the row cancelled, with its reason."""
    _fenced(db, job_id, epoch, f"UPDATE jobs SET state = {_UNLESS_CANCELLED}, error = CASE WHEN state = 'cancelled'"
            " THEN error ELSE ? END, finished_at = ?, heartbeat_at = ? WHERE id = ?",
            [state, _text(error), now(), now()])


def finish_if_possible(db: sqlite_utils.Database, job_id: int, error: str, epoch: int | None) -> None:
    """'failed' with `error` when the database can still take it (a full disk may refuse even that: then the
    row's vanished process shows it dead, and it resumes all the same); nothing when the file was replaced."""
    with contextlib.suppress(sqlite3.Error, OSError, StoreError):
        check_identity(db)
        finish(db, job_id, "failed", error, epoch)


def set_remote(db: sqlite_utils.Database, job_id: int, remote_id: str, params: dict[str, Any]) -> None:
    db.execute("UPDATE jobs SET remote_id = ?, params = ? WHERE id = ?",
               [remote_id, _json(params), job_id])
