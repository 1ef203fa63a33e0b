"""Labeling runs, live: label a plan's posts now (core.label.planning chose them and estimated the bill; a
batch plan goes to jobs.batches instead).

This module owns the run's job row: it takes over the queued (or dead) row, recovers what a killed run left
in flight, runs the live loop (jobs.label_live: claim, send, settle for each post) under a heartbeat, and writes
how the run ended. A run stopped failed, by Ctrl-C or by a full disk is resumable: a rerun of the same command
picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError, Superseded
from bizsent.core.label import ledger, providers
from bizsent.core.label.labelers import (
    Labeler,
)
from bizsent.core.label.planning import Params, Plan
from bizsent.core.store import disk_full, is_disk_full
from bizsent.jobs import rows, states
from bizsent.jobs.heartbeat import Beat
from bizsent.jobs.label_live import SUPERSEDED, Owner, live
from bizsent.jobs.label_report import Report, Snapshot


def start_job(db: sqlite_utils.Database, params: Params, total: int, snapshot: Snapshot,
              job_id: int | None = None) -> tuple[int, int]:
    """Run the given (queued) job row, else resume the same labeler's job whose process died, else a new row:
    (job id, the epoch this process holds it under)."""
    if job_id is not None:
        return job_id, rows.take_over(db, job_id, total)
    for job in rows.listing(db, "label"):
        same = {k: job["params"].get(k) for k in ("provider", "model", "mode", "prompt_version")}
        wanted = {k: params.as_dict()[k] for k in same}
        if same == wanted and job["state"] in ("running", "queued") and states.status(job) in ("dead", "queued"):
            try:
                return job["id"], rows.take_over(db, job["id"], total)
            except rows.JobBusy:  # another run resumed it a moment ago
                continue
    return rows.create(db, "label", params.as_dict(), total, snapshot.counts(params.mode)), rows.FIRST_EPOCH


def run_live(db: sqlite_utils.Database, settings: Settings, the_plan: Plan, *,
             progress: Callable[[Snapshot], None] | None = None, backoff_s: float = 0.5,
             labeler: Labeler | None = None, interrupted: list[ledger.Interrupted] | None = None,
             job_id: int | None = None) -> Report:
    """Label the plan's posts now; returns when every post is answered or failed, or a cap/cancel/stop ends it.

    `interrupted`: what the caller already recovered (and reported) from an earlier killed run.
    `job_id`: run this queued job row (`bizsent label --job ID`, the console's detached runs)."""
    params = the_plan.params
    labeler = labeler or providers.make_labeler(settings, params.provider, params.model)
    if interrupted is None:
        interrupted = ledger.recover(db, params.provider, params.model)
    interrupted = list(interrupted)
    snap = Snapshot(total=len(the_plan.items), estimate_usd=the_plan.chosen.usd, skipped=the_plan.skipped.copy(),
                    interrupted=len(interrupted))
    job_id, epoch = start_job(db, params, len(the_plan.items), snap, job_id)
    # The process this one replaced (if any) is fenced off now: what it still had open is maybe paid.
    late = ledger.recover(db, params.provider, params.model)
    interrupted.extend(late)
    snap.interrupted += len(late)
    owner: Owner = (job_id, epoch)
    unknown: list[ledger.Interrupted] = []
    try:
        # Claims stay live while the heartbeat (a thread of its own) is fresh, even when the event loop waits.
        with Beat(db, job_id, epoch=epoch) as beat:
            state, error = asyncio.run(live(db, settings, the_plan, labeler, owner, snap, progress, backoff_s,
                                             interrupted, unknown, beat))
    except KeyboardInterrupt:
        # Ctrl-C: what was answered is kept; the row waits to be resumed, its in-flight requests are recovered.
        rows.progress(db, job_id, done=snap.done, failed=snap.failed, total=snap.total, counts=snap.counts("live"),
                      epoch=epoch)
        rows.requeue(db, job_id, f"interrupted (Ctrl-C); resume with `bizsent label --job {job_id}`", epoch)
        raise
    except (sqlite3.Error, OSError) as exc:
        if not is_disk_full(exc):
            raise
        # A full disk: every answer written so far is whole (one transaction each); the row says why it stopped
        # if there is still room for that, else its vanished process shows it dead. Either way it resumes.
        problem = disk_full(settings.data_dir)
        rows.finish_if_possible(db, job_id, f"{problem}; resume with `bizsent label --job {job_id}`", epoch)
        raise problem from None
    if state == SUPERSEDED:
        raise Superseded(job_id)
    rows.progress(db, job_id, done=snap.done, failed=snap.failed, total=snap.total, counts=snap.counts("live"),
                  epoch=epoch)
    rows.finish(db, job_id, state, error, epoch)
    return Report(job_id, state, snap, interrupted, error, unknown)


def job_params(db: sqlite_utils.Database, settings: Settings, job_id: int) -> Params:
    """The Params of a queued (or crashed) labeling job row; its limit shrinks by what the job already labeled."""
    job = rows.get(db, job_id)
    if job is None or not job["kind"].startswith("label"):
        raise BizsentError(f"no labeling job {job_id}; see `bizsent batches list`")
    # A live run stopped by an unreachable server or a spent quota is 'failed' and resumes like a killed one.
    resumable = ("queued", "running", "failed") if job["params"].get("mode") != "batch" else ("queued", "running")
    if job["state"] not in resumable:
        raise BizsentError(f"job {job_id} is {job['state']}; start a new one with `bizsent label`")
    if job["state"] == "running" and states.status(job) == "running" and not rows.mine(job["pid"], job["host"]):
        raise rows.JobBusy(f"job {job_id} is already running (pid {job['pid']}); cancel it with"
                           f" `bizsent jobs cancel {job_id}`")
    p = job["params"]
    providers.get(p.get("provider") or "?")
    params = Params.from_dict(p, settings)  # the job's own examples, prompt version and price
    if params.limit is not None:
        labeled = db.execute("SELECT count(*) FROM api_calls WHERE job_id = ? AND status = 'ok'",
                             [job_id]).fetchone()[0]
        params = replace(params, limit=max(0, params.limit - labeled))
    return params


def queue(db: sqlite_utils.Database, params: Params) -> int:
    """A job row in state 'queued' that `bizsent label --job ID` (or the console's launcher) will run."""
    return rows.queue(db, "label", params.as_dict())


def cancel(db: sqlite_utils.Database, job_id: int, settings: Settings | None = None) -> str:
    """Cancel a labeling job: state -> cancelled; a live run stops before its next request, batch jobs are
    cancelled at the provider (which needs `settings`; the default config when not given)."""
    from bizsent.core.config import load_settings
    from bizsent.jobs import batches

    return batches.cancel(db, settings or load_settings(), job_id)


def recover_stale(db: sqlite_utils.Database) -> list[int]:
    """Live jobs whose process is dead (core.store.liveness) go back to 'queued', so `bizsent label --job ID`
    resumes them; returns their ids. Batch jobs wait remotely and are left alone."""
    stale = []
    for job in rows.listing(db, "label"):
        if job["state"] == "running" and states.status(job) == "dead":
            rows.requeue(db, job["id"], f"interrupted: process {job['pid']} stopped; resume with"
                                        f" `bizsent label --job {job['id']}`")
            stale.append(job["id"])
    return stale
