"""What the console's Jobs screen shows beside the jobs themselves (jobs.views): a job's failures from the
ledger, every labeler against the human test set, and the dry-run estimate of a new labeling job with what
would stop it. The rules are the engine's (planning, approval, agreement); this module gathers them for one view.

Read-only: the console calls each function in a worker thread on a connection of its own, and knows a job started
from it only by its row.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import ledger, planning
from bizsent.core.label.agreement import agreement
from bizsent.core.label.approval import approve
from bizsent.core.label.planning import Plan
from bizsent.core.labels import LABELS, labeler_name
from bizsent.core.store.posts import HUMAN_TEST
from bizsent.jobs import rows, views
from bizsent.jobs.views import JobView


@dataclass(frozen=True, slots=True)
class Failure:
    """Failed attempts of a job with one status and reason (a post retried three times counts 3 attempts)."""

    status: str  # error | invalid
    reason: str
    attempts: int
    posts: int


@dataclass(frozen=True, slots=True)
class JobDetail:
    job: JobView
    failures: list[Failure]
    calls: dict[str, int]  # ledger status -> requests


def job_detail(db: sqlite_utils.Database, job_id: int) -> JobDetail | None:
    job = rows.get(db, job_id)
    if job is None:
        return None
    # Only labeling jobs have ledger rows; for other kinds both are empty.
    failures = [Failure(status, reason or "(no reason recorded)", attempts, posts) for status, reason, attempts, posts
                in db.execute("SELECT status, error, count(*), count(DISTINCT post_id) FROM api_calls"
                              " WHERE job_id = ? AND status IN ('error', 'invalid') GROUP BY status, error"
                              " ORDER BY count(*) DESC, error", [job_id])]
    calls = dict(db.execute("SELECT status, count(*) FROM api_calls WHERE job_id = ? GROUP BY status", [job_id]))
    return JobDetail(views.view(job), failures, calls)


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
