"""The live loop of a labeling run (jobs.labeling.run_live starts it): `concurrency` workers take the plan's posts
from one queue, and each post goes through three steps, in this order:

1. claim: a ledger row for the request (ledger.claim: one live claim per request across processes, its estimated
   cost reserved against the caps); a post another run holds or answered is skipped, a cap stops the run.
2. send: wait for the pause and the two limiters (requests and tokens per minute), mark the row sent, ask the
   labeler; a failure closes the row (maybe paid when it may have left this machine) and is retried or stops.
3. settle: the answer's cost and raw response into the ledger; a usable answer and the ledger's "ok" land in one
   transaction with the label.

Invalid answers and transient failures are retried per `labeling.max_retries` (429s have their own allowance).
The run stops when the server cannot be reached `labeling.max_consecutive_failures` times in a row, the account
is out of quota, the row is cancelled, or another process takes the job over (superseded: it stops at once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from aiolimiter import AsyncLimiter
from bizsent.core.collect.images import image_jpeg
from bizsent.core.config import Settings
from bizsent.core.errors import Superseded
from bizsent.core.label import ledger, providers
from bizsent.core.label.labelers import (
    Labeler,
    LabelerError,
    Outcome,
    QuotaExhausted,
    Request,
    Transient,
    Unreachable,
)
from bizsent.core.label.labelers.base import exhausted_for
from bizsent.core.label.planning import CLAIMED, Item, Plan, the_text
from bizsent.core.sections import ProviderSettings
from bizsent.core.store import transaction
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from bizsent.jobs import rows
from bizsent.jobs.heartbeat import Beat
from bizsent.jobs.label_report import Snapshot
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


@dataclass(slots=True)
class LiveRun:
    """What the workers of one run share. They run on one event loop, so it changes only between awaits."""

    db: sqlite_utils.Database
    settings: Settings
    plan: Plan
    labeler: Labeler
    owner: Owner
    snap: Snapshot
    beat: Beat
    progress: Callable[[Snapshot], None] | None
    backoff_s: float
    interrupted: list[ledger.Interrupted]
    unknown: list[ledger.Interrupted]
    conf: ProviderSettings
    loop: asyncio.AbstractEventLoop
    # One request at a time spaced 60/rpm apart: no start-up burst, so no window ever exceeds the limit.
    requests: AsyncLimiter = field(init=False)
    tokens: AsyncLimiter = field(init=False)
    # This run's open claims: call id -> what is known ("sent", and the answer's cost once it came back), what a
    # run whose job was taken over leaves in the ledger as maybe paid (ledger.close_lost).
    in_flight: dict[int, dict[str, Any]] = field(default_factory=dict)
    dearest_usd: float = 0.0  # the largest real cost of one answer in this run
    unreachable_in_a_row: int = 0
    paused_until: float = 0.0
    state: str | None = None  # why the run stops, once something stops it
    error: str | None = None
    last_write: float = 0.0
    workers: list[asyncio.Task] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.requests = AsyncLimiter(1, 60 / self.conf.requests_per_minute)
        self.tokens = AsyncLimiter(self.conf.tokens_per_minute, 60)

    @property
    def job_id(self) -> int:
        return self.owner[0]

    @property
    def epoch(self) -> int:
        return self.owner[1]

    @property
    def resume(self) -> str:
        return f"resume with `bizsent label --job {self.job_id}`"


def halt(run: LiveRun, state: str, error: str | None) -> None:
    if run.state is None:
        run.state, run.error = state, error
    if state == SUPERSEDED:  # stop sending at once: requests waiting for an answer are abandoned too
        for task in run.workers:
            if task is not asyncio.current_task():
                task.cancel()


def close(run: LiveRun, call_id: int, **how: Any) -> None:
    """Close the ledger row of one request (ok, invalid, error, maybe paid, cancelled)."""
    ledger.complete(run.db, call_id, epoch=run.epoch, **how)
    run.in_flight.pop(call_id, None)


def report(run: LiveRun, force: bool = False) -> None:
    """Progress to the caller now, and to the job row every PROGRESS_EVERY_S; the row may say cancelled."""
    snap = run.snap
    if run.progress:
        run.progress(snap)
    if not force and run.loop.time() - run.last_write < PROGRESS_EVERY_S:
        return
    run.last_write = run.loop.time()
    try:
        state = rows.progress(run.db, run.job_id, done=snap.done, failed=snap.failed, total=snap.total,
                              counts=snap.counts("live"), epoch=run.epoch)
    except Superseded:
        halt(run, SUPERSEDED, None)
        return
    if state == "cancelled":
        halt(run, "cancelled", "cancelled by the user")


def pause(run: LiveRun, seconds: float) -> None:
    run.paused_until = max(run.paused_until, run.loop.time() + seconds)


def claim(run: LiveRun, item: Item) -> int:
    """Step 1: the request's ledger row, its cost reserved against the caps; returns its call id."""
    if run.beat.lost.is_set():
        raise Superseded(run.job_id)
    if run.state:
        raise _Stop
    params = run.plan.params
    reserve = max(run.plan.usd_of(item) * RESERVE_MARGIN, run.dearest_usd)
    claimed = ledger.claim(run.db, key=item.key, job_id=run.job_id, post_id=item.post_id, provider=params.provider,
                           model=params.model, prompt_version=params.prompt_version, reserve_usd=reserve,
                           caps=ledger.Caps(run.settings.labeling.budget_job_usd,
                                            run.settings.labeling.budget_total_usd),
                           label_source=params.source, labeler=params.labeler, epoch=run.epoch)
    if claimed.recovered:
        run.interrupted.extend(claimed.recovered)
        run.snap.interrupted += len(claimed.recovered)
    if claimed.refused == "cap":
        halt(run, "cancelled", "budget cap reached")
        raise _Stop
    if claimed.call_id is None:
        raise _Skip("labeled by another run" if claimed.refused == "done" else CLAIMED)
    run.in_flight[claimed.call_id] = {"sent": False}
    return claimed.call_id


async def send(run: LiveRun, item: Item, jpeg: bytes, call_id: int) -> tuple[Outcome, float]:
    """Step 2: wait for the limiters, mark the row sent, ask the labeler: (its outcome, latency in ms). A failure
    closes the row and is raised for the retry loop, or stops the run."""
    while (wait := run.paused_until - run.loop.time()) > 0:
        await asyncio.sleep(wait)
    await run.requests.acquire()
    await run.tokens.acquire(min(run.conf.tokens_per_minute,
                                 run.plan.chosen.tokens_in / max(1, len(run.plan.items))))
    if run.state:
        close(run, call_id, status="cancelled", error="run stopped before sending")
        raise _Stop
    ledger.mark_sent(run.db, call_id, run.epoch)
    run.in_flight[call_id]["sent"] = True
    started = time.monotonic()
    try:
        outcome = await run.labeler.label(Request(item.key, the_text(item), jpeg, run.plan.examples))
    except Unreachable as exc:
        unreachable(run, exc, call_id, item, (time.monotonic() - started) * 1000)
        if run.state:
            raise _Stop from None
        raise
    except Transient as exc:
        run.unreachable_in_a_row = 0
        close(run, call_id, status="error", error=exc.reason, latency_ms=(time.monotonic() - started) * 1000)
        if exc.retry_after is not None:
            pause(run, exc.retry_after)
        run.snap.retries += 1
        raise
    except LabelerError as exc:  # QuotaExhausted and the rest: the run cannot go on
        close(run, call_id, status="error", error=str(exc))
        halt(run, "failed", f"{exc}; {run.resume}" if isinstance(exc, QuotaExhausted) else str(exc))
        raise _Stop from None
    run.unreachable_in_a_row = 0
    return outcome, (time.monotonic() - started) * 1000


def unreachable(run: LiveRun, exc: Unreachable, call_id: int, item: Item, latency: float) -> None:
    if exc.maybe_sent:
        # It left this machine and no answer came back: the server may have billed it. Maybe paid.
        close(run, call_id, status=ledger.MAYBE_PAID, latency_ms=latency,
              error=f"{exc.cause}: fate unknown, may be billed; sent again")
        run.unknown.append(ledger.Interrupted(call_id, item.post_id, item.key, run.job_id))
        run.snap.maybe_paid += 1
    else:
        close(run, call_id, status="error", latency_ms=latency, error=f"not sent: {exc.cause}")
    run.unreachable_in_a_row += 1
    run.snap.retries += 1
    if run.unreachable_in_a_row >= run.settings.labeling.max_consecutive_failures:
        halt(run, "failed", f"cannot reach {exc.host} ({exc.cause}) {run.unreachable_in_a_row} times in a row;"
                            f" check labeling.{run.plan.params.provider}.base_url / your network; {run.resume}")


def settle(run: LiveRun, item: Item, call_id: int, outcome: Outcome, latency: float) -> None:
    """Step 3: the answer's cost and raw response into the ledger; a usable answer becomes the post's label, in
    the same transaction as the ledger's "ok"."""
    params = run.plan.params
    if (reset := exhausted_for(outcome.headers)) is not None:
        pause(run, reset)
    usd = params.usd(outcome.tokens_in, outcome.tokens_out)
    run.dearest_usd = max(run.dearest_usd, usd)
    path = ledger.save_response(run.settings.data_dir, item.key, call_id, outcome.raw)
    run.snap.usd += usd
    common = dict(tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out, usd=usd, latency_ms=latency,
                  response_path=path)
    run.in_flight[call_id].update(common)
    if outcome.answer is None:
        close(run, call_id, status="invalid", error=outcome.error, **common)
        run.snap.retries += 1
        raise _Invalid(outcome.error or "no answer")
    answer = outcome.answer
    with transaction(run.db):  # the label and the ledger's "ok" land together or not at all
        close(run, call_id, status="ok", **common)
        set_label(run.db, item.post_id, NewLabel(
            label=answer.label, source=params.source, split=item.split, labeler=params.labeler,
            confidence=answer.confidence, sarcastic=answer.sarcastic, unsure=answer.confidence < 0.5,
            rationale=answer.rationale))


async def attempt(run: LiveRun, item: Item, jpeg: bytes) -> None:
    """One try at one post: claim, send, settle."""
    try:
        call_id = claim(run, item)
        outcome, latency = await send(run, item, jpeg, call_id)
        settle(run, item, call_id, outcome, latency)
    except Superseded:
        halt(run, SUPERSEDED, None)
        raise _Stop from None


async def one(run: LiveRun, item: Item) -> None:
    """One post, tried until answered, skipped, or out of retries."""
    snap, labeling = run.snap, run.settings.labeling
    try:
        jpeg = await asyncio.to_thread(image_jpeg, item.image_path, run.settings.images.max_pixels)
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
        return failures["other"] > labeling.max_retries or failures["limited"] > RATE_LIMIT_RETRIES

    def wait(state: Any) -> float:
        exc = state.outcome.exception()
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return exc.retry_after
        return wait_exponential_jitter(initial=run.backoff_s, max=30)(state)

    try:
        async for try_ in AsyncRetrying(stop=give_up, wait=wait, retry=retry_if_exception_type((Transient, _Invalid)),
                                        reraise=False):
            with try_:
                await attempt(run, item, jpeg)
        snap.done += 1
    except _Skip as exc:
        snap.skipped[exc.reason] += 1
        snap.total -= 1
    except RetryError as exc:
        last = exc.last_attempt.exception()
        snap.failed += 1
        snap.errors[getattr(last, "reason", None) or str(last)] += 1


async def worker(run: LiveRun, queue: asyncio.Queue[Item]) -> None:
    while not run.state:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        try:
            await one(run, item)
        except _Stop:
            return
        report(run)


async def live(db: sqlite_utils.Database, settings: Settings, the_plan: Plan, labeler: Labeler, owner: Owner,
               snap: Snapshot, progress: Callable[[Snapshot], None] | None, backoff_s: float,
               interrupted: list[ledger.Interrupted], unknown: list[ledger.Interrupted],
               beat: Beat) -> tuple[str, str | None]:
    """Label the plan's posts with `concurrency` workers; returns (final state, error)."""
    conf = providers.settings_of(settings, the_plan.params.provider)
    run = LiveRun(db, settings, the_plan, labeler, owner, snap, beat, progress, backoff_s, interrupted, unknown,
                  conf, asyncio.get_running_loop())
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in the_plan.items:
        queue.put_nowait(item)
    run.workers.extend(asyncio.create_task(worker(run, queue)) for _ in range(conf.concurrency))
    try:
        ended = await asyncio.gather(*run.workers, return_exceptions=True)
    finally:
        await labeler.aclose()
        ledger.close_all_lost(db, run.in_flight)  # only a superseded run (or a crash, a full disk) leaves any
    if failure := next((e for e in ended if isinstance(e, Exception)), None):
        raise failure
    if run.state == SUPERSEDED:
        return SUPERSEDED, None
    report(run, force=True)
    return run.state or "done", run.error
