"""What the console shows of pods: the database's rows and, when RUNPOD_API_KEY is set, the account beside them.

Reads only, with one exception: an account survey refreshes live rows' state and cost, and marks rows whose pod
RunPod no longer has (orphans.survey and reconcile, as `bizsent pods list` does). Light at import time (no
httpx): the console's status bar reads `billing` on every tick, and start-up must not pay for the RunPod client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from bizsent.core.config import SECRET_ENV, Settings
from bizsent.core.errors import BizsentError
from bizsent.core.pods import records

BILLING = ("requested", "provisioning", "running")  # states whose GPU bills (a stopped pod keeps only its disk)
LOG_NAME = "pod.log"  # data/runs/<run>/pod.log: the pod's log as the laptop received it
TAIL_BYTES = 64_000


@dataclass(frozen=True, slots=True)
class PodView:
    """One line of the Pods screen."""

    key: str  # the pod id, or "row <id>" for a row RunPod has not answered for yet
    pod_id: str | None
    name: str
    run_name: str | None
    gpu: str | None
    state: str  # the database's word (running, stopped, ...), or RunPod's status lower-cased for a pod it lacks
    uptime_s: int | None
    usd_per_hour: float
    usd_so_far: float
    ours: bool
    orphan: bool
    why: str  # what the account survey says of it ('' without one)

    @property
    def billing(self) -> bool:
        return self.state in BILLING and self.usd_per_hour > 0

    @property
    def live(self) -> bool:
        return self.state in records.LIVE


@dataclass(frozen=True, slots=True)
class Account:
    """One survey of the RunPod account: its pods (None: not read) and one line on how the reading went."""

    pods: list[PodView] | None
    note: str
    at: float = 0.0  # time.time() of the reading


def key_is_set() -> bool:
    return bool(os.environ.get(SECRET_ENV["runpod"], "").strip())


def billing(db: sqlite_utils.Database) -> tuple[int, float]:
    """(pods billing, their total $/h) as the database knows them: the status bar's figure."""
    row = db.execute(f"SELECT count(*), coalesce(sum(usd_per_hour), 0) FROM pods WHERE state IN {BILLING}"
                     " AND pod_id IS NOT NULL").fetchone()
    return int(row[0]), float(row[1])


def _seconds_since(stamp: str | None, now: datetime) -> int | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(int((now - then).total_seconds()), 0)


def _of_row(row: records.PodRow, now: datetime) -> PodView:
    rate = row.usd_per_hour or 0.0
    live = row.state in BILLING
    uptime = _seconds_since(row.created_at, now) if live else None
    # Between surveys a billing pod's cost grows with its age; the row holds the last figure RunPod backed.
    so_far = max(row.total_usd, (uptime or 0) * rate / 3600) if live else row.total_usd
    return PodView(key=row.pod_id or f"row {row.id}", pod_id=row.pod_id, name=row.name, run_name=row.run_name,
                   gpu=row.gpu, state=row.state, uptime_s=uptime, usd_per_hour=rate if live else 0.0,
                   usd_so_far=so_far, ours=True, orphan=False, why="")


def store_pods(db: sqlite_utils.Database, finished_limit: int = 20) -> list[PodView]:
    """Every live pod row and the most recent finished ones, newest first."""
    now = datetime.now(UTC)
    rows = [records.PodRow.from_row(r) for r in db.query(
        f"SELECT * FROM pods WHERE state IN {records.LIVE} UNION ALL SELECT * FROM"
        f" (SELECT * FROM pods WHERE state NOT IN {records.LIVE} ORDER BY id DESC LIMIT ?) ORDER BY id DESC",
        [finished_limit])]
    return [_of_row(r, now) for r in rows]


def survey_account(db: sqlite_utils.Database, settings: Settings) -> Account:
    """The account's pods with orphans flagged, or why they could not be read (no key, RunPod down): one line,
    never an exception, so a caller on a timer can show it and carry on."""
    import time

    if not key_is_set():
        return Account(None, f"{SECRET_ENV['runpod']} is not set: showing the pods the database knows; export it"
                             " to see the whole account and its orphans", time.time())
    from bizsent.core.pods import api, orphans

    try:
        with api.client(settings, retries=0, timeout_s=15.0) as client:
            account = orphans.survey(db, client, settings)
            orphans.reconcile(db, client, account)
    except BizsentError as exc:
        return Account(None, f"RunPod could not be read: {exc}", time.time())
    pods = [PodView(key=a.pod.id, pod_id=a.pod.id, name=a.pod.name,
                    run_name=a.row.run_name if a.row else None, gpu=a.pod.gpu,
                    state=records.STATE_OF.get(a.pod.status, a.pod.status.lower()),
                    uptime_s=a.pod.uptime_s, usd_per_hour=a.pod.usd_per_hour, usd_so_far=a.usd_so_far,
                    ours=a.ours, orphan=a.orphan, why=a.why) for a in account]
    orphan_count = sum(p.orphan for p in pods)
    note = f"{len(pods)} pod(s) on the account" + (f", {orphan_count} orphan(s)" if orphan_count else "")
    return Account(pods, note, time.time())


def combined(store: list[PodView], account: Account | None) -> list[PodView]:
    """The account's reading of each pod it has (fresher), then the database's rows it lacks: a pod billing on
    the account is never hidden, a row of a pod RunPod forgot keeps its last figures."""
    if account is None or account.pods is None:
        return store
    seen = {p.pod_id for p in account.pods}
    by_id = {p.pod_id: p for p in store if p.pod_id}
    fresh = [p if p.pod_id not in by_id else _with_row(p, by_id[p.pod_id]) for p in account.pods]
    return fresh + [p for p in store if p.pod_id not in seen]


def _with_row(live: PodView, row: PodView) -> PodView:
    """The account's figures, the row's run name and (never lower) cost."""
    return PodView(key=live.key, pod_id=live.pod_id, name=live.name, run_name=row.run_name or live.run_name,
                   gpu=live.gpu or row.gpu, state=live.state, uptime_s=live.uptime_s,
                   usd_per_hour=live.usd_per_hour, usd_so_far=max(live.usd_so_far, row.usd_so_far), ours=live.ours,
                   orphan=live.orphan, why=live.why)


def orphan_notice(account: Account) -> str | None:
    """The start-up warning, or None when no orphan bills."""
    orphans = [p for p in account.pods or [] if p.orphan]
    if not orphans:
        return None
    rate = sum(p.usd_per_hour for p in orphans)
    return (f"{len(orphans)} orphan pod(s) billing ${rate:.2f}/h: open Pods (F6) or run `bizsent pods reap`")


def run_id_of(db: sqlite_utils.Database, run_name: str) -> int | None:
    """The newest training run of that name (a pod run's metrics are written under it like local training)."""
    row = db.execute("SELECT id FROM runs WHERE name = ? AND kind = 'train' ORDER BY id DESC LIMIT 1",
                     [run_name]).fetchone()
    return int(row[0]) if row else None


def log_path(settings: Settings, run_name: str) -> Path:
    return settings.data_dir / "runs" / run_name / LOG_NAME


def log_tail(settings: Settings, run_name: str, lines: int = 200) -> list[str]:
    """The last `lines` lines of the run's pod log ([] before the first line arrives)."""
    path = log_path(settings, run_name)
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - TAIL_BYTES, 0))  # read every second: never the whole of a long log
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    tail = text.splitlines()
    if size > TAIL_BYTES:
        tail = tail[1:]  # the first line read is probably cut
    return tail[-lines:]
