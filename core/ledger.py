"""The cost ledger (`api_calls`): every paid request is written before it is sent and completed after.

Row life: pending (queued behind the rate limiter, not sent) -> sent (handed to the SDK) -> ok | invalid |
error. A process killed mid-run leaves 'pending' rows (never sent: 'abandoned', free) and 'sent' rows
(maybe answered and billed: 'interrupted'); the next run resends the latter and reports them as the only
requests that may have been paid twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from core.log import redact
from core.store import now

FINAL = ("ok", "invalid", "error", "abandoned", "interrupted", "cancelled")


def request_key(post_id: int, image_sha256: str, prompt_version: str, model: str) -> str:
    """Idempotency key: the same post, image, prompt and model is the same request, whatever the run."""
    return hashlib.sha256(f"{post_id}|{image_sha256}|{prompt_version}|{model}".encode()).hexdigest()


def begin(db: sqlite_utils.Database, *, key: str, job_id: int | None, post_id: int, provider: str, model: str,
          prompt_version: str, mode: str = "live", status: str = "pending") -> int:
    return db.execute(
        "INSERT INTO api_calls (request_key, job_id, post_id, provider, model, prompt_version, mode, status,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [key, job_id, post_id, provider, model, prompt_version, mode, status, now()],
    ).lastrowid


def mark_sent(db: sqlite_utils.Database, call_id: int) -> None:
    db.execute("UPDATE api_calls SET status = 'sent' WHERE id = ?", [call_id])


def complete(db: sqlite_utils.Database, call_id: int, *, status: str, tokens_in: int | None = None,
             tokens_out: int | None = None, usd: float | None = None, latency_ms: float | None = None,
             error: str | None = None, response_path: str | None = None) -> None:
    db.execute(
        "UPDATE api_calls SET status = ?, tokens_in = ?, tokens_out = ?, usd = ?, latency_ms = ?, error = ?,"
        " response_path = ?, completed_at = ? WHERE id = ?",
        # SDK errors can quote request details; the ledger must never hold a key.
        [status, tokens_in, tokens_out, usd, latency_ms, redact(error) if error else None, response_path, now(),
         call_id],
    )


def save_response(data_dir: Path, key: str, call_id: int, body: Any) -> str:
    """Keep the raw answer (for audits and re-parsing) at responses/<key[:2]>/<key>-<call>.json."""
    path = data_dir / "responses" / key[:2] / f"{key}-{call_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # An error body can quote the request's headers back: scrub keys like every other way out.
    path.write_text(redact(json.dumps(body, default=str)), encoding="utf-8")
    return str(path)


def pid_alive(pid: int | None) -> bool:
    """True while the process runs; an exited child nobody has reaped yet (a zombie) counts as dead."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we can know
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass(frozen=True, slots=True)
class Interrupted:
    call_id: int
    post_id: int
    request_key: str
    job_id: int | None


def recover(db: sqlite_utils.Database, provider: str, model: str) -> list[Interrupted]:
    """Close the open rows of dead processes; return the 'sent' ones (the only possible double payments)."""
    rows = db.execute(
        "SELECT c.id, c.post_id, c.request_key, c.job_id, c.status, j.pid, j.state FROM api_calls c"
        " LEFT JOIN jobs j ON j.id = c.job_id WHERE c.provider = ? AND c.model = ? AND c.mode = 'live'"
        " AND c.status IN ('pending', 'sent')",
        [provider, model],
    ).fetchall()
    lost: list[Interrupted] = []
    for call_id, post, key, job, status, pid, state in rows:
        if state == "running" and pid_alive(pid) and pid != os.getpid():
            continue  # another live process owns it
        if status == "pending":
            complete(db, call_id, status="abandoned", error="never sent: the process stopped first")
        else:
            complete(db, call_id, status="interrupted",
                     error="in flight when the process stopped; may be billed and will be resent")
            lost.append(Interrupted(call_id, post, key, job))
    return lost


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
