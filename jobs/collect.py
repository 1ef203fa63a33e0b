"""Scheduled collection as a job: `bizsent scrape --every 60m` runs its loop (jobs.schedule) under a `collect` row.

The row shows the loop like any long-running work (`bizsent jobs`, the console's Jobs screen): its heartbeat,
the rounds done (done) and failed (failed) out of `--rounds` (total; 0 for a loop without end), when the next
round is due and what the last one did (counts: next_at, last). A cancel stops it within a second while it
waits, and mid-round like Ctrl-C (the heartbeat interrupts the work; a scrape is safe to stop anywhere). It
resumes (`bizsent jobs resume ID` runs `bizsent scrape --job ID`): the same schedule, counting on from the rounds
it recorded, with the data folder's lock taken again, so a resumed loop never runs beside another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.collect.fourchan import Clock
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.jobs import rows
from bizsent.jobs.schedule import AlreadyCollecting, Round, human, loop_lock, run_every, scrape_round

KIND = "collect"
SCRAPE_ARGS = ("max_threads", "include_archive", "download_images")  # what a round passes on to the scrape


@dataclass(frozen=True, slots=True)
class Schedule:
    every_s: float
    retry_s: float
    rounds: int | None  # None: until cancelled
    scrape: dict[str, Any]  # SCRAPE_ARGS

    def params(self) -> dict[str, Any]:
        return {"every_s": self.every_s, "retry_s": self.retry_s, "rounds": self.rounds, "scrape": self.scrape}

    @classmethod
    def of(cls, job: dict[str, Any]) -> Schedule:
        p = job["params"]
        return cls(float(p["every_s"]), float(p["retry_s"]), p.get("rounds"), dict(p.get("scrape") or {}))


def describe(job: dict[str, Any]) -> str:
    """The Jobs list's few words: how often, and when the next round is due."""
    line = f"every {human(float(job['params'].get('every_s', 0)))}"
    next_at = job["counts"].get("next_at")
    if next_at and job["state"] == "running":
        line += f", next {datetime.fromtimestamp(next_at, UTC):%H:%M} UTC"
    return line


class _CancellableClock:
    """The loop's clock, whose waits end as soon as the job is cancelled (Cancelled)."""

    def __init__(self, clock: Clock, cancelled: threading.Event) -> None:
        self._clock, self._cancelled = clock, cancelled

    def now(self) -> float:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise Cancelled("cancelled by the user")


def run_job(db: sqlite_utils.Database, db_path: Path, settings: Any, clock: Clock, *, job_id: int | None = None,
            plan: Schedule | None = None, say=lambda _line: None) -> int:
    """Run collect row `job_id` (a resume), or a new row for `plan`, in this process under the data folder's
    lock; returns the rounds run here. A second loop on the folder is refused in one line before it makes a
    row (a resumed row it refuses says why)."""
    if job_id is not None:
        job = rows.get(db, job_id)
        if job is None or job["kind"] != KIND:
            raise BizsentError(f"job {job_id} is not a scheduled collection; see `bizsent jobs`")
        plan = Schedule.of(job)
    assert plan is not None
    try:
        with loop_lock(settings.data_dir):
            if job_id is None:
                job_id = rows.queue(db, KIND, plan.params())
            say(f"job {job_id}: collecting every {human(plan.every_s)}; `bizsent jobs cancel {job_id}` stops it")
            return _loop(db, db_path, settings, job_id, plan, clock, say)
    except AlreadyCollecting as exc:
        if job_id is not None:
            rows.finish(db, job_id, "failed", str(exc))
        raise


def _loop(db: sqlite_utils.Database, db_path: Path, settings: Any, job_id: int, plan: Schedule, clock: Clock,
          say) -> int:
    from bizsent.jobs.heartbeat import running

    job = rows.get(db, job_id)
    assert job is not None
    tally = {"done": job["done"], "failed": job["failed"]}
    left = None if plan.rounds is None else max(plan.rounds - tally["done"] - tally["failed"], 0)
    with running(db, job_id, plan.rounds or 0, interrupt_on_cancel=True) as beat:

        def after(result: Round, next_at: float | None) -> None:
            tally["done" if result.ok else "failed"] += 1
            rows.progress(db, job_id, done=tally["done"], failed=tally["failed"], total=plan.rounds or 0,
                          counts={"next_at": next_at, "last": result.line[:300]}, epoch=beat.epoch)

        return run_every(lambda: scrape_round(db_path, settings, **plan.scrape), plan.every_s,
                         _CancellableClock(clock, beat.cancelled), retry_s=plan.retry_s, rounds=left, say=say,
                         after=after)
