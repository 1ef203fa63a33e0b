"""What the console's Pods screen, its status bar and `bizsent pods tail` read: every pod with its GPU, state,
uptime, price, cost so far and orphan flag (the database's rows and, when RUNPOD_API_KEY is set, the account
beside them), the pods billing now, and the recent log lines of a run's pod (kept in data/runs/<run>/pod.log by
the process that watches the run). The screen draws these; the rules stay here and in core.pods.orphans.

Light at import time (no httpx): the status bar reads `billing` on every tick, and the console's start-up must
not pay for the RunPod client. An account survey writes too: it refreshes live rows' state and cost and marks
rows whose pod RunPod no longer has (orphans.survey and reconcile, as `bizsent pods list` does).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils
from bizsent.core.config import SECRET_ENV, Settings
from bizsent.core.errors import BizsentError
from bizsent.core.pods import records

if TYPE_CHECKING:
    from bizsent.core.pods.api import RunpodClient
    from bizsent.core.pods.orphans import AccountPod

LOG_NAME = "pod.log"
TAIL_BYTES = 64_000  # a log tail is read every second: from the file's end, never the whole of a long log
BILLING = ("requested", "provisioning", "running")  # states whose GPU bills (a stopped pod keeps only its disk)
ENDED = ("terminated", "gone")  # deleted on RunPod: nothing left to stop or terminate


@dataclass(frozen=True, slots=True)
class PodView:
    pod_id: str
    name: str
    run_name: str | None
    gpu: str | None
    state: str  # the database's word (running, stopped, terminated, ...); RunPod's status is translated to it
    uptime_s: int | None
    usd_per_hour: float  # billed now (0 when stopped or finished)
    usd_so_far: float
    orphan: bool
    note: str  # why it is (or is not) an orphan, or what the database says of a finished pod
    job_id: int | None
    ours: bool = True  # named with runpod.name_prefix (a pod without it is the user's own, never reaped)
    storage_usd_month: float = 0.0  # a stopped pod's volume, billed by the month though RunPod shows $0.00/h

    @property
    def billing(self) -> bool:
        return self.state in BILLING and self.usd_per_hour > 0


@dataclass(frozen=True, slots=True)
class Account:
    """One survey of the RunPod account: its pods (None: not read) and one line on how the reading went."""

    pods: list[PodView] | None
    note: str
    at: float = 0.0  # time.time() of the reading


def run_log_path(settings: Settings, run_name: str) -> Path:
    """Where the container and system log of a run's pod is kept on this machine."""
    return settings.data_dir / "runs" / run_name / LOG_NAME


def recent_log(settings: Settings, run_name: str, lines: int = 50) -> list[str]:
    """The last `lines` log lines of the run's pod (empty before any arrived)."""
    path = run_log_path(settings, run_name)
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(size - TAIL_BYTES, 0))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    tail = text.splitlines()
    if size > TAIL_BYTES:
        tail = tail[1:]  # the first line read is probably cut
    return tail[-lines:]


def key_is_set() -> bool:
    """Whether the account can be read at all (no key: the database's pods only, and no network)."""
    return bool(os.environ.get(SECRET_ENV["runpod"], "").strip())


def billing(db: sqlite_utils.Database) -> tuple[int, float]:
    """(pods billing, their total $/h) as the database knows them: the status bar's figure."""
    row = db.execute(f"SELECT count(*), coalesce(sum(usd_per_hour), 0) FROM pods WHERE state IN {BILLING}"
                     " AND pod_id IS NOT NULL").fetchone()
    return int(row[0]), float(row[1])


def stored(db: sqlite_utils.Database, settings: Settings) -> tuple[int, float]:
    """(stopped pods, what their volumes bill a month) as the database knows them: the status bar's other figure
    (each at runpod.volume_gb, the size bizsent asks for)."""
    from bizsent.core.pods.estimate import stopped_usd_per_month

    count = db.execute("SELECT count(*) FROM pods WHERE state = 'stopped' AND pod_id IS NOT NULL").fetchone()[0]
    return int(count), count * stopped_usd_per_month(settings)


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


def _of_account(a: AccountPod) -> PodView:
    row = a.row
    return PodView(a.pod.id, a.pod.name, row.run_name if row else None, a.pod.gpu,
                   records.STATE_OF.get(a.pod.status, a.pod.status.lower()), a.pod.uptime_s, a.pod.usd_per_hour,
                   a.usd_so_far, a.orphan, a.why, row.job_id if row else None, a.ours,
                   a.storage_usd_month)


def live_pods(db: sqlite_utils.Database, settings: Settings, client: RunpodClient | None = None) -> list[PodView]:
    """Every pod of the RunPod account (one API call), orphans flagged; refreshes the live rows' state and cost.
    Without `client`, one is opened with RUNPOD_API_KEY (one BizsentError line when it is unset)."""
    from bizsent.core.pods.api import client as api_client
    from bizsent.core.pods.orphans import survey

    if client is None:
        with api_client(settings) as own:
            return live_pods(db, settings, own)
    return [_of_account(a) for a in survey(db, client, settings)]


def stored_pods(db: sqlite_utils.Database, limit: int = 50, settings: Settings | None = None) -> list[PodView]:
    """The pods bizsent started, newest first, as the database last saw them (no API call: cheap to redraw).
    Between surveys a billing pod's cost grows with its age; the row holds the last figure RunPod backed. With
    `settings`, a stopped pod carries what its volume bills a month."""
    from bizsent.core.pods.estimate import stopped_usd_per_month

    now = datetime.now(UTC)
    out = []
    for r in db.query("SELECT * FROM pods WHERE pod_id IS NOT NULL ORDER BY id DESC LIMIT ?", [limit]):
        row = records.PodRow.from_row(r)
        assert row.pod_id is not None
        live = row.state in BILLING
        rate = (row.usd_per_hour or 0.0) if live else 0.0
        uptime = _seconds_since(row.created_at, now) if live else None
        so_far = max(row.total_usd, (uptime or 0) * rate / 3600)
        storage = stopped_usd_per_month(settings) if settings is not None and row.state == "stopped" else 0.0
        out.append(PodView(row.pod_id, row.name, row.run_name, row.gpu, row.state, uptime, rate, so_far, False,
                           r.get("error") or row.state, row.job_id, storage_usd_month=storage))
    return out


def survey_account(db: sqlite_utils.Database, settings: Settings) -> Account:
    """The account's pods with orphans flagged, or why they could not be read (no key, RunPod down): one line,
    never an exception, so a caller on a timer can show it and carry on."""
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
    pods = [_of_account(a) for a in account]
    count = sum(p.orphan for p in pods)
    note = f"{len(pods)} pod(s) on the account" + (f", {count} orphan(s)" if count else "")
    return Account(pods, note, time.time())


def combined(stored: list[PodView], account: Account | None, now: float | None = None) -> list[PodView]:
    """The account's reading of each pod it has (fresher), then the database's rows it lacks: a pod billing on
    the account is never hidden, a row of a pod RunPod forgot keeps its last figures.

    A billing pod's uptime and cost move on together from the survey's reading (`now` - account.at), so between
    surveys neither steps while the other ticks. The order is stable: pods the database does not know (orphans,
    the user's own) first by id, then the database's rows newest first; a survey never reorders the list."""
    if account is None or account.pods is None:
        return stored
    elapsed = max((time.time() if now is None else now) - account.at, 0.0)
    by_id = {p.pod_id: p for p in stored}
    fresh = {p.pod_id: _moved_on(p, elapsed, by_id.get(p.pod_id)) for p in account.pods}
    unknown = sorted((p for pod_id, p in fresh.items() if pod_id not in by_id), key=lambda p: p.pod_id)
    return unknown + [fresh.get(p.pod_id, p) for p in stored]


def _moved_on(pod: PodView, elapsed: float, known: PodView | None) -> PodView:
    if pod.billing:
        pod = replace(pod, uptime_s=None if pod.uptime_s is None else pod.uptime_s + int(elapsed),
                      usd_so_far=pod.usd_so_far + pod.usd_per_hour * elapsed / 3600)
    if known is None:
        return pod
    return replace(pod, run_name=known.run_name or pod.run_name, usd_so_far=max(pod.usd_so_far, known.usd_so_far))


def list_note(account: Account | None, listed: list[PodView]) -> str:
    """The Pods screen's top line: how many pods are listed and where each count comes from, so it matches the
    rows (the account's pods and the database's finished ones are listed together)."""
    if account is None or account.pods is None:
        return account.note if account is not None else "reading the pods…"
    on_account = {p.pod_id for p in account.pods}
    only_db = sum(p.pod_id not in on_account for p in listed)
    orphans = sum(p.orphan for p in listed)
    line = f"{len(listed)} pod(s) listed: {len(on_account)} on the RunPod account"
    if only_db:
        line += f", {only_db} known only to the database (finished or gone)"
    return line + (f"; {orphans} orphan(s)" if orphans else "")


def orphan_notice(account: Account) -> str | None:
    """The console's start-up warning, or None when no orphan bills."""
    found = [p for p in account.pods or [] if p.orphan]
    if not found:
        return None
    rate = sum(p.usd_per_hour for p in found)
    return f"{len(found)} orphan pod(s) billing ${rate:.2f}/h: open Pods (F6) or run `bizsent pods reap`"


def run_id_of(db: sqlite_utils.Database, run_name: str) -> int | None:
    """The newest training run of that name (a pod run's metric events are stored under it like local training)."""
    row = db.execute("SELECT id FROM runs WHERE name = ? AND kind = 'train' ORDER BY id DESC LIMIT 1",
                     [run_name]).fetchone()
    return int(row[0]) if row else None
