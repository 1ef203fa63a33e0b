"""The cost ledger (`api_calls`): every paid request is claimed and written before it is sent and completed after.

Row life: pending (claimed, queued behind the rate limiter, not sent) -> sent (handed to the SDK, or in a
remote batch) -> ok | invalid | error | interrupted. An open row (pending or sent) is the **claim** on its
request key (post, image, prompt version, model): `claim` writes it in one BEGIN IMMEDIATE transaction that
checks that no live claim and no answer exist for the key and that its reserved dollars fit under the caps
(settled spend + open reservations of every process), so two runs at once never send the same request and
never overrun a cap together. A unique partial index makes a second open row for a key impossible.

A claim is live while its owner runs: a live row's job is 'running' under the row's pid and is not dead by the
one liveness rule (core.store.liveness: a fresh heartbeat); a sent batch row lives while its batch job runs.
Anything else is a dead claim: 'pending' rows were never sent ('abandoned', free), 'sent' rows may have been
answered and billed ('interrupted': **maybe paid**). Requests that timed out or lost their connection after sending are
'interrupted' too. Those are the only requests that can be paid twice; the notice and `bizsent costs`
count them.

Fencing (jobs.rows): a job's process holds its row's epoch; claim, mark_sent and complete given that epoch are
refused (jobs.rows.Superseded) once another process took the job over, so the process it replaced can no
longer claim, send, or turn a request the new owner marked maybe paid into an answer. It closes what it had in
flight with `close_lost` instead: still maybe paid, whatever answer came back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import StoreError, Superseded
from bizsent.core.log import redact
from bizsent.core.store import check_identity, now, transaction
from bizsent.core.store.liveness import is_dead

FINAL = ("ok", "invalid", "error", "abandoned", "interrupted", "cancelled")
OPEN = ("pending", "sent")
MAYBE_PAID = "interrupted"  # sent, and no answer recorded: the fate is unknown


def request_key(post_id: int, image_sha256: str, prompt_version: str, model: str) -> str:
    """Idempotency key: the same post, image, prompt and model is the same request, whatever the run."""
    return hashlib.sha256(f"{post_id}|{image_sha256}|{prompt_version}|{model}".encode()).hexdigest()


def begin(db: sqlite_utils.Database, *, key: str, job_id: int | None, post_id: int | None, provider: str, model: str,
          prompt_version: str, mode: str = "live", status: str = "pending", reserved_usd: float | None = None,
          epoch: int | None = None) -> int:
    """Write a row without the checks of `claim` (which is what every sender uses)."""
    return db.execute(
        "INSERT INTO api_calls (request_key, job_id, post_id, provider, model, prompt_version, mode, status,"
        " created_at, pid, reserved_usd, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [key, job_id, post_id, provider, model, prompt_version, mode, status, now(), os.getpid(), reserved_usd,
         epoch],
    ).lastrowid


def _check_epoch(db: sqlite_utils.Database, job_id: int | None, epoch: int | None) -> None:
    """Superseded unless job `job_id` is still at `epoch` (nothing to check without one)."""
    if epoch is None or job_id is None:
        return
    row = db.execute("SELECT epoch FROM jobs WHERE id = ?", [job_id]).fetchone()
    if row is None or row[0] != epoch:
        raise Superseded(job_id)


@dataclass(frozen=True, slots=True)
class Caps:
    job_usd: float
    total_usd: float


@dataclass(slots=True)
class Claim:
    call_id: int | None  # the claimed row; None when refused
    refused: str | None = None  # 'done' (answered or labeled already), 'busy' (a live claim), 'cap'
    recovered: list[Interrupted] = field(default_factory=list)  # dead claims on the key closed on the way

    @property
    def ok(self) -> bool:
        return self.call_id is not None


def claim(db: sqlite_utils.Database, *, key: str, job_id: int | None, post_id: int, provider: str, model: str,
          prompt_version: str, mode: str = "live", reserve_usd: float = 0.0, caps: Caps | None = None,
          label_source: str | None = None, labeler: str | None = None, epoch: int | None = None) -> Claim:
    """Claim `key` for this process, atomically: refused when the key is answered (or the post already has a
    label from `label_source`/`labeler`), when a live claim holds it, or when `reserve_usd` would cross a cap
    counting everything every process has spent or reserved. A dead claim on the key is closed on the way
    (maybe paid, like after a kill) and returned in `recovered`. With the job's `epoch`: Superseded once
    another process took the job over."""
    recovered: list[Interrupted] = []
    with transaction(db):
        _check_epoch(db, job_id, epoch)
        if db.execute("SELECT 1 FROM api_calls WHERE request_key = ? AND status = 'ok' LIMIT 1", [key]).fetchone():
            return Claim(None, "done")
        if label_source and db.execute("SELECT 1 FROM labels WHERE post_id = ? AND source = ? AND labeler = ?",
                                       [post_id, label_source, labeler or ""]).fetchone():
            return Claim(None, "done")
        for row in db.execute(f"{_OPEN_SQL} AND c.request_key = ?", [key]).fetchall():
            if _alive(row):
                return Claim(None, "busy")
            lost = _close_dead(db, row)
            if lost is not None:
                recovered.append(lost)
        if caps is not None and reserve_usd > 0:
            if committed_usd(db) + reserve_usd > caps.total_usd + 1e-12:
                return Claim(None, "cap", recovered)
            if job_id is not None and committed_usd(db, job_id) + reserve_usd > caps.job_usd + 1e-12:
                return Claim(None, "cap", recovered)
        call_id = begin(db, key=key, job_id=job_id, post_id=post_id, provider=provider, model=model,
                        prompt_version=prompt_version, mode=mode, reserved_usd=reserve_usd, epoch=epoch)
    return Claim(call_id, None, recovered)


_OPEN_SQL = ("SELECT c.id, c.post_id, c.request_key, c.job_id, c.status, c.mode, c.batch_id, c.pid, j.pid,"
             " j.state, j.heartbeat_at, j.host FROM api_calls c LEFT JOIN jobs j ON j.id = c.job_id"
             " WHERE c.status IN ('pending', 'sent')")


def _alive(row: tuple) -> bool:
    """Is the process (or the remote batch job) that holds this open row still going?"""
    _, _, _, _, status, mode, batch_id, pid, job_pid, job_state, heartbeat, host = row
    if mode == "batch" and status == "sent" and batch_id:
        return job_state == "running"  # the provider holds it until collected, failed or cancelled
    owner = pid or job_pid
    if job_state != "running" or not owner or job_pid != owner:
        return False  # the job was requeued, finished, or taken over by another process
    return not is_dead(job_state, heartbeat, job_pid, host)


def _close_dead(db: sqlite_utils.Database, row: tuple) -> Interrupted | None:
    call_id, post, key, job, status, mode, batch_id = row[:7]
    if status == "pending" and mode == "live":
        _close(db, call_id, status="abandoned", error="never sent: the process stopped first")
        return None
    # Sent (or a batch whose submission may have reached the provider): maybe billed, so maybe paid twice.
    _close(db, call_id, status=MAYBE_PAID, error="in flight when the process stopped; may be billed and will be resent")
    return Interrupted(call_id, post, key, job)


def close_all_lost(db: sqlite_utils.Database, in_flight: dict[int, dict[str, Any]]) -> None:
    """close_lost for each of a stopped run's open claims ({call id: {"sent", and "usd", "tokens_in",
    "tokens_out", "response_path" once known}}). Best effort: what cannot be written now (a full disk) the next
    run closes as a dead claim, and a failure here must not hide why the run stopped. Nothing at all when the
    database file was replaced (core.store.check_identity): it is not ours to write."""
    with contextlib.suppress(sqlite3.Error, OSError, StoreError):
        check_identity(db)
        for call_id, known in in_flight.items():
            close_lost(db, call_id, sent=known["sent"], usd=known.get("usd"), tokens_in=known.get("tokens_in"),
                       tokens_out=known.get("tokens_out"), response_path=known.get("response_path"))


def _close(db: sqlite_utils.Database, call_id: int, *, status: str, error: str, usd: float | None = None,
           tokens_in: int | None = None, tokens_out: int | None = None, response_path: str | None = None) -> None:
    """Close an open row (or add what is known to a maybe-paid one) without the owner's epoch: only ever towards
    'abandoned' or maybe paid, never to an answer, so any process may do it."""
    db.execute(
        "UPDATE api_calls SET status = ?, error = coalesce(error, ?), usd = coalesce(?, usd),"
        " tokens_in = coalesce(?, tokens_in), tokens_out = coalesce(?, tokens_out),"
        " response_path = coalesce(?, response_path), completed_at = coalesce(completed_at, ?)"
        " WHERE id = ? AND status IN ('pending', 'sent', 'interrupted')",
        [status, error, usd, tokens_in, tokens_out, response_path, now(), call_id])


def close_lost(db: sqlite_utils.Database, call_id: int, *, sent: bool, usd: float | None = None,
               tokens_in: int | None = None, tokens_out: int | None = None,
               response_path: str | None = None) -> None:
    """A request of a process whose job was taken over: never sent, it is abandoned; sent, it stays maybe paid
    (the new owner may send it again), with the cost of its answer if one came back."""
    if not sent:
        _close(db, call_id, status="abandoned", error="never sent: the job was taken over first")
        return
    _close(db, call_id, status=MAYBE_PAID, usd=usd, tokens_in=tokens_in, tokens_out=tokens_out,
           response_path=response_path, error="in flight when another process took the job over; may be paid twice")


def live_claims(db: sqlite_utils.Database) -> set[str]:
    """Request keys held by live claims (another run's requests in flight, posts waiting in open batches)."""
    return {row[2] for row in db.execute(_OPEN_SQL).fetchall() if _alive(row)}


def committed_usd(db: sqlite_utils.Database, job_id: int | None = None) -> float:
    """What the caps count: settled dollars, plus the reservation of every open claim, plus the reservation of
    every request of unknown fate (maybe paid) that has no settled cost."""
    where, args = ("WHERE job_id = ?", [job_id]) if job_id is not None else ("", [])
    return db.execute(
        "SELECT coalesce(sum(CASE WHEN status IN ('pending', 'sent') THEN"
        " max(coalesce(reserved_usd, 0), coalesce(usd, 0))"
        " WHEN status = 'interrupted' THEN coalesce(usd, reserved_usd, 0) ELSE coalesce(usd, 0) END), 0)"
        f" FROM api_calls {where}", args).fetchone()[0]


# With an epoch, a write to a row of a job that has moved on to another epoch changes nothing.
_FENCE = " AND (job_id IS NULL OR (SELECT epoch FROM jobs WHERE jobs.id = api_calls.job_id) = ?)"


def _fenced(db: sqlite_utils.Database, call_id: int, epoch: int | None, sql: str, args: list[Any]) -> None:
    if epoch is None:
        db.execute(sql, [*args, call_id])
    elif db.execute(sql + _FENCE, [*args, call_id, epoch]).rowcount == 0:
        job = db.execute("SELECT job_id FROM api_calls WHERE id = ?", [call_id]).fetchone()
        raise Superseded(job[0] if job else 0)


def mark_sent(db: sqlite_utils.Database, call_id: int, epoch: int | None = None) -> None:
    """About to send: with the owner's epoch, Superseded (and nothing sent) once the job was taken over."""
    _fenced(db, call_id, epoch, "UPDATE api_calls SET status = 'sent' WHERE id = ?", [])


def complete(db: sqlite_utils.Database, call_id: int, *, status: str, tokens_in: int | None = None,
             tokens_out: int | None = None, usd: float | None = None, latency_ms: float | None = None,
             error: str | None = None, response_path: str | None = None, epoch: int | None = None) -> None:
    """How a request ended; with the owner's epoch, Superseded once the job was taken over (see close_lost)."""
    _fenced(db, call_id, epoch,
            "UPDATE api_calls SET status = ?, tokens_in = ?, tokens_out = ?, usd = ?, latency_ms = ?, error = ?,"
            " response_path = ?, completed_at = ? WHERE id = ?",
            # SDK errors can quote request details; the ledger must never hold a key.
            [status, tokens_in, tokens_out, usd, latency_ms, redact(error) if error else None, response_path, now()])


def save_response(data_dir: Path, key: str, call_id: int, body: Any) -> str:
    """Keep the raw answer (for audits and re-parsing) at responses/<key[:2]>/<key>-<call>.json."""
    path = data_dir / "responses" / key[:2] / f"{key}-{call_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # An error body can quote the request's headers back: scrub keys like every other way out.
    path.write_text(redact(json.dumps(body, default=str)), encoding="utf-8")
    return str(path)


@dataclass(frozen=True, slots=True)
class Interrupted:
    call_id: int
    post_id: int
    request_key: str
    job_id: int | None


def recover(db: sqlite_utils.Database, provider: str, model: str) -> list[Interrupted]:
    """Close the dead claims (open rows of stopped processes) for this provider and model; return the 'sent'
    ones (maybe paid: the only possible double payments)."""
    lost: list[Interrupted] = []
    with transaction(db):
        for row in db.execute(f"{_OPEN_SQL} AND c.provider = ? AND c.model = ?", [provider, model]).fetchall():
            if not _alive(row) and (closed := _close_dead(db, row)) is not None:
                lost.append(closed)
    return lost


def maybe_paid(db: sqlite_utils.Database) -> tuple[int, float]:
    """Requests of unknown fate (interrupted, timed out, connection lost after sending) and their estimate."""
    n, usd = db.execute("SELECT count(*), coalesce(sum(coalesce(usd, reserved_usd, 0)), 0) FROM api_calls"
                        " WHERE status = 'interrupted'").fetchone()
    return n, usd


def total_usd(db: sqlite_utils.Database) -> float:
    return db.execute("SELECT coalesce(sum(usd), 0) FROM api_calls").fetchone()[0]


def job_usd(db: sqlite_utils.Database, job_id: int) -> float:
    return db.execute("SELECT coalesce(sum(usd), 0) FROM api_calls WHERE job_id = ?", [job_id]).fetchone()[0]


def mean_tokens(db: sqlite_utils.Database, provider: str, model: str, prompt_version: str,
                min_calls: int = 3) -> tuple[float, float, int] | None:
    """Mean recorded tokens in/out of answered calls for this model and prompt (None if too few)."""
    n, tin, tout = db.execute(
        "SELECT count(*), avg(tokens_in), avg(tokens_out) FROM api_calls WHERE provider = ? AND model = ?"
        " AND prompt_version = ? AND status = 'ok' AND tokens_in > 0",
        [provider, model, prompt_version],
    ).fetchone()
    return (tin, tout, n) if n >= min_calls else None


def spend_by(db: sqlite_utils.Database, column: str) -> list[dict[str, Any]]:
    """Spend grouped by provider, model, job or day: calls, answered, tokens, dollars."""
    group = {"provider": "provider", "model": "provider || ' ' || model", "job": "coalesce(job_id, 0)",
             "day": "substr(created_at, 1, 10)"}[column]
    rows = db.execute(
        f"SELECT {group} AS k, count(*), sum(status = 'ok'), coalesce(sum(tokens_in), 0),"
        f" coalesce(sum(tokens_out), 0), coalesce(sum(usd), 0), sum(status = 'interrupted')"
        f" FROM api_calls GROUP BY k ORDER BY k"
    ).fetchall()
    return [{column: k, "calls": calls, "ok": ok or 0, "tokens_in": tin, "tokens_out": tout, "usd": usd,
             "interrupted": inter or 0} for k, calls, ok, tin, tout, usd, inter in rows]
