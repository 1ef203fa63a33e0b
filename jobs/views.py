"""Jobs as readers see them (`bizsent jobs`, `bizsent batches`, the console's Jobs screen): one JobView per row,
with its shown status (jobs.states.status), heartbeat age and what it does, and the one text rendering of the
list and of one job."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.labels import api_labeler
from bizsent.core.store.liveness import age_s
from bizsent.jobs import rows
from bizsent.jobs.states import ACTIVE, KINDS, RESUMABLE_FROM, status


@dataclass(frozen=True, slots=True)
class JobView:
    id: int
    kind: str
    status: str  # queued | starting | running | waiting | dead | done | failed | cancelled
    what: str  # the kind's one-line description of the job
    done: int
    failed: int
    total: int
    heartbeat_age_s: float | None  # None: never beat
    pid: int | None
    host: str | None
    error: str | None
    remote_id: str | None
    created_at: str
    heartbeat_at: str | None
    finished_at: str | None
    resumable: bool  # its kind can resume it and it is stopped (dead, queued, failed)
    params: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    unit: str = ""  # what its kind counts (jobs.states.Kind.unit)
    next_step: str = ""  # what a done job offers next (jobs.states.Kind.done_says)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def share(self) -> float:
        if self.total:
            return max(0.0, min(1.0, (self.done + self.failed) / self.total))
        return 1.0 if self.status == "done" else 0.0

    @property
    def count_text(self) -> str:
        """done/total; with no total, a kind that counts units reads as the count alone ("8 rounds", not "8/0")."""
        return f"{self.done} {self.unit}" if self.unit and not self.total else f"{self.done}/{self.total}"

    @property
    def done_text(self) -> str:
        """How far it is, in words: "done 2 of 5 (40%)", or for a loop without end "8 rounds done, no end set"."""
        if self.unit and not self.total:
            return f"{self.count_text} done, no end set"
        return f"done {self.done} of {self.total or '?'}" + (f" ({self.share:.0%})" if self.total else "")

    # Labeling jobs' own figures (params and counts of a `label` row; empty for other kinds).
    @property
    def provider(self) -> str:
        return self.params.get("provider", "?")

    @property
    def model(self) -> str:
        return self.params.get("model", "?")

    @property
    def mode(self) -> str:
        return self.params.get("mode", "live")

    @property
    def labeler(self) -> str:
        """provider:model@prompt_version: the name its labels carry, and the agreement table's key."""
        return api_labeler(self.provider, self.model, self.params.get("prompt_version", "?"))

    @property
    def usd(self) -> float:
        return float(self.counts.get("usd") or 0.0)

    @property
    def estimate_usd(self) -> float:
        return float(self.counts.get("estimate_usd") or 0.0)

    @property
    def rate_per_min(self) -> float | None:
        return self.counts.get("rate_per_min")

    @property
    def eta_s(self) -> float | None:
        return self.counts.get("eta_s")

    @property
    def skipped(self) -> dict[str, int]:
        return dict(self.counts.get("skipped") or {})

    @property
    def gave_up(self) -> dict[str, int]:
        return dict(self.counts.get("errors") or {})

    @property
    def interrupted(self) -> int:
        return int(self.counts.get("interrupted") or 0)


def view(job: dict[str, Any]) -> JobView:
    kind = KINDS.get(job["kind"])
    shown = status(job)
    age = age_s(job["heartbeat_at"]) if job["heartbeat_at"] else None
    return JobView(
        id=job["id"], kind=job["kind"], status=shown, what=kind.describe(job) if kind else job["kind"],
        done=job["done"], failed=job["failed"], total=job["total"] or 0, heartbeat_age_s=age, pid=job["pid"],
        host=job.get("host"), error=job["error"], remote_id=job["remote_id"], created_at=job["created_at"],
        heartbeat_at=job["heartbeat_at"], finished_at=job["finished_at"],
        resumable=bool(kind and kind.resumable(job) and shown in RESUMABLE_FROM),
        params=job["params"], counts=job["counts"], unit=kind.unit if kind else "",
        next_step=kind.done_says(job["params"]) if kind and shown == "done" else "")


def listing(db: sqlite_utils.Database, kind_prefix: str = "") -> list[JobView]:
    """Every job (or those of kinds starting with `kind_prefix`), newest first."""
    return [view(job) for job in reversed(rows.listing(db, kind_prefix))]


def one(db: sqlite_utils.Database, job_id: int) -> JobView:
    job = rows.get(db, job_id)
    if job is None:
        raise BizsentError(f"no job {job_id}; see `bizsent jobs`")
    return view(job)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def render_list(jobs: list[JobView], empty: str = "no jobs yet") -> str:
    """The job list as `bizsent jobs` and `bizsent batches list` print it."""
    if not jobs:
        return empty
    out = [f"{'id':>4} {'kind':<13} {'status':<9} {'what':<34} {'done':>6} {'failed':>6} {'total':>6}"
           f" {'USD':>9} {'beat':>6}  started"]
    for j in jobs:
        usd = f"{j.usd:>9.4f}" if "usd" in j.counts else f"{'':>9}"
        beat = age_text(j.heartbeat_age_s) if j.active or j.status == "dead" else ""
        out.append(f"{j.id:>4} {j.kind[:13]:<13} {j.status:<9} {j.what[:34]:<34} {j.done:>6} {j.failed:>6}"
                   f" {j.total:>6} {usd} {beat:>6}  {j.created_at[:19]}")
    return "\n".join(out)


def render_job(job: JobView) -> str:
    """One job in full, as `bizsent jobs show` and `bizsent batches show` print it."""
    out = [f"job {job.id}: {job.kind} {job.status} — {job.what}" + (f" ({job.error})" if job.error else "")]
    for key, value in (("params", job.params), ("counts", job.counts)):
        out.append(f"{key}: {json.dumps(value, sort_keys=True)}")
    out.append(f"progress {job.share:.0%}: done {job.done}, failed {job.failed}, total {job.total};"
               f" remote {job.remote_id or '-'}; heartbeat {job.heartbeat_at} ({age_text(job.heartbeat_age_s)} ago);"
               f" pid {job.pid} on {job.host or '-'}")
    if job.status == "dead":
        out.append("its process is gone: " + (f"`bizsent jobs resume {job.id}` continues it" if job.resumable
                                               else f"`bizsent jobs cancel {job.id}` closes it"))
    return "\n".join(out)


def running_count(db: sqlite_utils.Database) -> int:
    """Jobs at work now (starting, running, or waiting on a remote batch): what the status bar counts. Dead ones
    are not counted, though their rows still say 'running'."""
    jobs = rows.listing_active(db)
    return sum(status(job) in ("starting", "running", "waiting") for job in jobs)


def status_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Jobs by what they are now (states.status: a 'running' row whose process is gone counts as dead), for
    `bizsent status`."""
    counts: dict[str, int] = {}
    for job in rows.listing(db):
        now_ = status(job)
        counts[now_] = counts.get(now_, 0) + 1
    return dict(sorted(counts.items()))
