"""Labeling runs, live: label a plan's posts now (core.label.planning chose them and estimated the bill; a
batch plan goes to jobs.batches instead).

A live run sends `concurrency` requests at a time behind two client-side limiters (requests and tokens per
minute), pauses everyone when the server says so (Retry-After, exhausted rate-limit headers), retries
invalid answers and transient failures per `labeling.max_retries`, and claims every attempt in the ledger
before sending it (ledger.claim: one live claim per request across processes, its estimated cost reserved
against the caps). A post another run holds (live or in an open batch) is skipped. The run stops, failed and
resumable, when the server cannot be reached `labeling.max_consecutive_failures` times in a row or says the
account is out of quota. A rerun of the same command picks up where a killed one stopped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlite_utils
from aiolimiter import AsyncLimiter
from bizsent.core.collect.images import image_jpeg
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError, Superseded
from bizsent.core.label import ledger, providers
from bizsent.core.label.labelers import (
    Labeler,
    LabelerError,
    QuotaExhausted,
    Request,
    Transient,
    Unreachable,
)
from bizsent.core.label.labelers.base import exhausted_for
from bizsent.core.label.planning import CLAIMED, Item, Params, Plan, the_text
from bizsent.core.store import disk_full, is_disk_full, transaction
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from bizsent.jobs import rows, states
from bizsent.jobs.heartbeat import Beat
from bizsent.jobs.label_report import Report, Snapshot
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, wait_exponential_jitter

PROGRESS_EVERY_S = 0.5
RATE_LIMIT_RETRIES = 30
# A claim reserves this multiple of the post's estimate (or the dearest answer seen so far, if larger), so
# answers somewhat longer than estimated cannot carry concurrent runs over the total cap.
RESERVE_MARGIN = 1.5


SUPERSEDED = "superseded"  # how a run ends whose job another process took over (never stored: not its row now)
Owner = tuple[int, int]  # (job id, epoch): the token every write of a run carries (jobs.rows fencing)


class _Invalid(Exception):  # noqa: N818  (an answer we cannot use; retried like a transient failure)
    pass


class _Stop(Exception):  # noqa: N818
    pass


class _Skip(Exception):  # noqa: N818  (another run holds or answered this post: not ours to send)
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
            state, error = asyncio.run(_live(db, settings, the_plan, labeler, owner, snap, progress, backoff_s,
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


async def _live(db: sqlite_utils.Database, settings: Settings, the_plan: Plan, labeler: Labeler, owner: Owner,
                snap: Snapshot, progress: Callable[[Snapshot], None] | None, backoff_s: float,
                interrupted: list[ledger.Interrupted], unknown: list[ledger.Interrupted],
                beat: Beat) -> tuple[str, str | None]:
    params = the_plan.params
    job_id, epoch = owner
    # This run's open claims: call id -> what is known ("sent", and the answer's cost once it came back), what a
    # run whose job was taken over leaves in the ledger as maybe paid (ledger.close_lost).
    in_flight: dict[int, dict[str, Any]] = {}
    conf = providers.settings_of(settings, params.provider)
    caps = ledger.Caps(settings.labeling.budget_job_usd, settings.labeling.budget_total_usd)
    # One request at a time spaced 60/rpm apart: no start-up burst, so no window ever exceeds the limit.
    requests = AsyncLimiter(1, 60 / conf.requests_per_minute)
    tokens = AsyncLimiter(conf.tokens_per_minute, 60)
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in the_plan.items:
        queue.put_nowait(item)
    tokens_per_post = the_plan.chosen.tokens_in / max(1, len(the_plan.items))
    dearest = [0.0]  # the largest real cost of one answer in this run
    unreachable_in_a_row = [0]
    paused_until = [0.0]
    stop: dict[str, str | None] = {"state": None, "error": None}
    loop = asyncio.get_running_loop()
    last_write = [0.0]
    workers: list[asyncio.Task] = []
    resume = f"resume with `bizsent label --job {job_id}`"

    def halt(state: str, error: str | None) -> None:
        if stop["state"] is None:
            stop["state"], stop["error"] = state, error
        if state == SUPERSEDED:  # stop sending at once: requests waiting for an answer are abandoned too
            for task in workers:
                if task is not asyncio.current_task():
                    task.cancel()

    def settle(call_id: int, **how: Any) -> None:
        ledger.complete(db, call_id, epoch=epoch, **how)
        in_flight.pop(call_id, None)

    def report(force: bool = False) -> None:
        if progress:
            progress(snap)
        if force or loop.time() - last_write[0] >= PROGRESS_EVERY_S:
            last_write[0] = loop.time()
            try:
                state = rows.progress(db, job_id, done=snap.done, failed=snap.failed, total=snap.total,
                                      counts=snap.counts("live"), epoch=epoch)
            except Superseded:
                halt(SUPERSEDED, None)
                return
            if state == "cancelled":
                halt("cancelled", "cancelled by the user")

    def pause(seconds: float) -> None:
        paused_until[0] = max(paused_until[0], loop.time() + seconds)

    def unreachable(exc: Unreachable, call_id: int, item: Item, started: float) -> None:
        latency = (time.monotonic() - started) * 1000
        if exc.maybe_sent:
            # It left this machine and no answer came back: the server may have billed it. Maybe paid.
            settle(call_id, status=ledger.MAYBE_PAID, latency_ms=latency,
                            error=f"{exc.cause}: fate unknown, may be billed; sent again")
            unknown.append(ledger.Interrupted(call_id, item.post_id, item.key, job_id))
            snap.maybe_paid += 1
        else:
            settle(call_id, status="error", latency_ms=latency, error=f"not sent: {exc.cause}")
        unreachable_in_a_row[0] += 1
        limit = settings.labeling.max_consecutive_failures
        if unreachable_in_a_row[0] >= limit:
            halt("failed", f"cannot reach {exc.host} ({exc.cause}) {unreachable_in_a_row[0]} times in a row;"
                           f" check labeling.{params.provider}.base_url / your network; {resume}")

    async def attempt(item: Item, jpeg: bytes) -> None:
        try:
            await _attempt(item, jpeg)
        except Superseded:
            halt(SUPERSEDED, None)
            raise _Stop from None

    async def _attempt(item: Item, jpeg: bytes) -> None:
        if beat.lost.is_set():
            raise Superseded(job_id)
        if stop["state"]:
            raise _Stop
        reserve = max(the_plan.usd_of(item) * RESERVE_MARGIN, dearest[0])
        claim = ledger.claim(db, key=item.key, job_id=job_id, post_id=item.post_id, provider=params.provider,
                             model=params.model, prompt_version=params.prompt_version, reserve_usd=reserve,
                             caps=caps, label_source=params.source, labeler=params.labeler, epoch=epoch)
        if claim.recovered:
            interrupted.extend(claim.recovered)
            snap.interrupted += len(claim.recovered)
        if claim.refused == "cap":
            halt("cancelled", "budget cap reached")
            raise _Stop
        if claim.call_id is None:
            raise _Skip("labeled by another run" if claim.refused == "done" else CLAIMED)
        call_id = claim.call_id
        in_flight[call_id] = {"sent": False}
        while (wait := paused_until[0] - loop.time()) > 0:
            await asyncio.sleep(wait)
        await requests.acquire()
        await tokens.acquire(min(conf.tokens_per_minute, tokens_per_post))
        if stop["state"]:
            settle(call_id, status="cancelled", error="run stopped before sending")
            raise _Stop
        ledger.mark_sent(db, call_id, epoch)
        in_flight[call_id]["sent"] = True
        started = time.monotonic()
        try:
            outcome = await labeler.label(Request(item.key, the_text(item), jpeg, the_plan.examples))
        except Unreachable as exc:
            unreachable(exc, call_id, item, started)
            snap.retries += 1
            if stop["state"]:
                raise _Stop from None
            raise
        except Transient as exc:
            unreachable_in_a_row[0] = 0
            settle(call_id, status="error", error=exc.reason,
                            latency_ms=(time.monotonic() - started) * 1000)
            if exc.retry_after is not None:
                pause(exc.retry_after)
            snap.retries += 1
            raise
        except QuotaExhausted as exc:
            settle(call_id, status="error", error=str(exc))
            halt("failed", f"{exc}; {resume}")
            raise _Stop from None
        except LabelerError as exc:
            settle(call_id, status="error", error=str(exc))
            halt("failed", str(exc))
            raise _Stop from None
        unreachable_in_a_row[0] = 0
        latency = (time.monotonic() - started) * 1000
        if (reset := exhausted_for(outcome.headers)) is not None:
            pause(reset)
        usd = params.usd(outcome.tokens_in, outcome.tokens_out)
        dearest[0] = max(dearest[0], usd)
        path = ledger.save_response(settings.data_dir, item.key, call_id, outcome.raw)
        snap.usd += usd
        common = dict(tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out, usd=usd, latency_ms=latency,
                      response_path=path)
        in_flight[call_id].update(common)
        if outcome.answer is None:
            settle(call_id, status="invalid", error=outcome.error, **common)
            snap.retries += 1
            raise _Invalid(outcome.error or "no answer")
        answer = outcome.answer
        with transaction(db):  # the label and the ledger's "ok" land together or not at all
            settle(call_id, status="ok", **common)
            set_label(db, item.post_id, NewLabel(
                label=answer.label, source=params.source, split=item.split,
                labeler=params.labeler, confidence=answer.confidence, sarcastic=answer.sarcastic,
                unsure=answer.confidence < 0.5, rationale=answer.rationale))

    def wait(state: Any) -> float:
        exc = state.outcome.exception()
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return exc.retry_after
        return wait_exponential_jitter(initial=backoff_s, max=30)(state)

    async def one(item: Item) -> None:
        try:
            jpeg = await asyncio.to_thread(image_jpeg, item.image_path, settings.images.max_pixels)
        except (OSError, ValueError) as exc:
            snap.skipped[f"image unreadable: {type(exc).__name__}"] += 1
            snap.total -= 1
            return
        failures = {"limited": 0, "other": 0}

        def give_up(state: Any) -> bool:
            # A 429 says "later", not "wrong": it gets its own, larger allowance than other failures.
            exc = state.outcome.exception()
            kind = "limited" if isinstance(exc, Transient) and exc.reason == "HTTP 429" else "other"
            failures[kind] += 1
            return failures["other"] > settings.labeling.max_retries or failures["limited"] > RATE_LIMIT_RETRIES

        try:
            async for try_ in AsyncRetrying(stop=give_up, wait=wait,
                                            retry=retry_if_exception_type((Transient, _Invalid)), reraise=False):
                with try_:
                    await attempt(item, jpeg)
            snap.done += 1
        except _Skip as exc:
            snap.skipped[exc.reason] += 1
            snap.total -= 1
        except RetryError as exc:
            last = exc.last_attempt.exception()
            snap.failed += 1
            snap.errors[getattr(last, "reason", None) or str(last)] += 1

    async def worker() -> None:
        while not stop["state"]:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await one(item)
            except _Stop:
                return
            report()

    workers.extend(asyncio.create_task(worker()) for _ in range(conf.concurrency))
    try:
        ended = await asyncio.gather(*workers, return_exceptions=True)
    finally:
        await labeler.aclose()
        ledger.close_all_lost(db, in_flight)  # only a superseded run (or a crash, a full disk) leaves any
    if failure := next((e for e in ended if isinstance(e, Exception)), None):
        raise failure
    if stop["state"] == SUPERSEDED:
        return SUPERSEDED, None
    report(force=True)
    return stop["state"] or "done", stop["error"]


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
