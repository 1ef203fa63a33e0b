"""Read-only data behind the Batches screen: labeling jobs as their rows say, a job's failures from the ledger,
every labeler against the human test set, and the dry-run estimate the new-job dialog shows.

Like every read of the console, each function runs in a worker thread on a connection of its own. Jobs are read from the
store only: a job started from the console is another process, and its row is all the console knows of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import ledger, planning
from bizsent.core.label.agreement import agreement
from bizsent.core.label.approval import approve
from bizsent.core.label.planning import Plan
from bizsent.core.labels import LABELS, api_labeler, labeler_name
from bizsent.core.store.posts import HUMAN_TEST
from bizsent.jobs import labeling, rows


@dataclass(frozen=True, slots=True)
class JobRow:
    """One labeling job, as its row in `jobs` says (counts JSON unpacked)."""

    id: int
    provider: str
    model: str
    labeler: str  # provider:model@prompt_version: the name its labels carry, and the agreement table's key
    mode: str
    state: str
    stalled: bool  # 'running' but its process is gone and its heartbeat is old
    done: int
    failed: int
    total: int
    usd: float
    estimate_usd: float
    rate_per_min: float | None
    eta_s: float | None
    error: str | None
    pid: int | None
    remote_id: str | None
    created_at: str
    heartbeat_at: str | None
    finished_at: str | None
    skipped: dict[str, int] = field(default_factory=dict)
    gave_up: dict[str, int] = field(default_factory=dict)  # reason -> posts the job stopped retrying
    interrupted: int = 0

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


def _job_row(job: dict) -> JobRow:
    p, c = job["params"], job["counts"]
    model = p.get("model", "?")
    stalled = (job["state"] == "running" and p.get("mode") != "batch"
               and rows.age_s(job["heartbeat_at"]) > labeling.STALE_AFTER_S and not ledger.pid_alive(job["pid"]))
    return JobRow(
        id=job["id"], provider=p.get("provider", "?"), model=model,
        labeler=api_labeler(p.get("provider", "?"), model, p.get("prompt_version", "?")),
        mode=p.get("mode", "live"), state=job["state"],
        stalled=stalled, done=job["done"], failed=job["failed"], total=job["total"] or 0,
        usd=float(c.get("usd") or 0.0), estimate_usd=float(c.get("estimate_usd") or 0.0),
        rate_per_min=c.get("rate_per_min"), eta_s=c.get("eta_s"), error=job["error"], pid=job["pid"],
        remote_id=job["remote_id"], created_at=job["created_at"], heartbeat_at=job["heartbeat_at"],
        finished_at=job["finished_at"], skipped=dict(c.get("skipped") or {}), gave_up=dict(c.get("errors") or {}),
        interrupted=int(c.get("interrupted") or 0),
    )


def job_rows(db: sqlite_utils.Database) -> list[JobRow]:
    """Every labeling job, newest first."""
    return [_job_row(job) for job in reversed(rows.listing(db, "label"))]


@dataclass(frozen=True, slots=True)
class Failure:
    """Failed attempts of a job with one status and reason (a post retried three times counts 3 attempts)."""

    status: str  # error | invalid
    reason: str
    attempts: int
    posts: int


@dataclass(frozen=True, slots=True)
class JobDetail:
    job: JobRow
    failures: list[Failure]
    calls: dict[str, int]  # ledger status -> requests


def job_detail(db: sqlite_utils.Database, job_id: int) -> JobDetail | None:
    job = rows.get(db, job_id)
    if job is None:
        return None
    failures = [Failure(status, reason or "(no reason recorded)", attempts, posts) for status, reason, attempts, posts
                in db.execute("SELECT status, error, count(*), count(DISTINCT post_id) FROM api_calls"
                              " WHERE job_id = ? AND status IN ('error', 'invalid') GROUP BY status, error"
                              " ORDER BY count(*) DESC, error", [job_id])]
    calls = dict(db.execute("SELECT status, count(*) FROM api_calls WHERE job_id = ? GROUP BY status", [job_id]))
    return JobDetail(_job_row(job), failures, calls)


@dataclass(frozen=True, slots=True)
class LabelerScore:
    """One labeler against the human test set (core.agreement's figures)."""

    source: str
    labeler: str
    n: int
    accuracy: float
    macro_f1: float
    kappa: float
    recall: dict[str, float]
    confusion: list[list[int]]  # rows human, columns this labeler, LABELS order
    sarcastic_n: int
    sarcastic_accuracy: float

    @property
    def name(self) -> str:
        return labeler_name(self.source, self.labeler)


@dataclass(frozen=True, slots=True)
class Agreement:
    test_posts: int
    labelers: list[LabelerScore]


def agreement_scores(db: sqlite_utils.Database) -> Agreement:
    test_posts = db.execute(f"SELECT count(*) FROM labels WHERE {HUMAN_TEST}").fetchone()[0]
    scored = [LabelerScore(r["source"], r["labeler"], r["n"], r["accuracy"], r["macro_f1"], r["kappa"],
                           {label: r["recall"][label] for label in LABELS}, r["confusion"], r["sarcastic_n"],
                           r["sarcastic_accuracy"]) for r in agreement(db).against_human]
    return Agreement(test_posts, scored)


@dataclass(frozen=True, slots=True)
class EstimateView:
    """What the new-job dialog shows for one choice of provider, model, mode and limit."""

    plan: Plan | None
    spent_usd: float
    job_cap_usd: float
    total_cap_usd: float
    blocker: str | None  # the one-line reason the job cannot start (bad choice, missing key, cap, nothing to do)


def estimate_view(db: sqlite_utils.Database, settings: Settings, provider: str, model: str | None,
                  limit: int | None, batch: bool) -> EstimateView:
    """The dry-run estimate (core.label.planning.plan: nothing is sent, nothing is written) and what would stop
    it."""
    caps = (ledger.total_usd(db), settings.labeling.budget_job_usd, settings.labeling.budget_total_usd)
    try:
        params = planning.resolve(settings, provider, model or None, limit, batch)
        the_plan = planning.plan(db, settings, params)
    except BizsentError as exc:
        return EstimateView(None, *caps, str(exc))
    return EstimateView(the_plan, *caps, approve(db, settings, the_plan).blocker)
