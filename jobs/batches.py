"""Batch API labeling (every provider with `supports_batch`: OpenAI `/v1/batches`, Gemini batch jobs; both half
price) and the `bizsent batches` /
`costs` views.

`submit` writes a ledger row per request (status 'pending', mode 'batch'), sends the requests as one or more
remote batch jobs (the provider's core.label.batching.Backend) and marks the rows 'sent' with their remote id,
and records the remote ids in the job row, so any later process can `collect`: poll each remote job, complete
the ledger rows from its answers at the batch price, write labels, and resubmit the failures (up to
labeling.max_retries).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from bizsent.core.collect.images import image_jpeg
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import ledger, providers
from bizsent.core.label.batching import Backend
from bizsent.core.label.labelers.base import Request
from bizsent.core.label.planning import CLAIMED, Item, Params, Plan, few_shot_examples
from bizsent.core.labels import Example, user_prompt
from bizsent.core.store import now, transaction
from bizsent.core.store.posts import HUMAN_TEST, human_test, set_label
from bizsent.core.store.records import NewLabel
from bizsent.jobs import rows
from bizsent.jobs.label_report import Snapshot

Entry = tuple[Item, Any, int]  # the post, its provider payload, the payload's size in bytes


@dataclass(slots=True)
class BatchReport:
    job_id: int
    submitted: int
    remote_ids: list[str]
    state: str = "running"
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.remote_ids:
            line = f"job {self.job_id}: nothing submitted"
        else:
            line = (f"job {self.job_id}: submitted {self.submitted} requests in batch(es)"
                    f" {', '.join(self.remote_ids)}; run `bizsent batches collect` later to fetch the results")
        if self.skipped:
            line += "; not sent: " + ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
        return line


def _payloads(settings: Settings, remote: Backend, params: Params, items: list[Item], examples: tuple[Example, ...],
              snap: Snapshot) -> list[Entry]:
    out = []
    for item in items:
        try:
            jpeg = image_jpeg(item.image_path, settings.images.max_pixels)
        except (OSError, ValueError) as exc:
            snap.skipped[f"image unreadable: {type(exc).__name__}"] += 1
            continue
        payload, size = remote.payload(Request(item.key, user_prompt(item.subject, item.text), jpeg, examples),
                                       params.model)
        out.append((item, payload, size))
    return out


def _chunks(entries: list[Entry], max_bytes: int, max_requests: int) -> list[list[Entry]]:
    chunks: list[list[Entry]] = [[]]
    size = 0
    for entry in entries:
        if chunks[-1] and (size + entry[2] > max_bytes or len(chunks[-1]) >= max_requests):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry[2]
    return [c for c in chunks if c]


def _send(db: sqlite_utils.Database, settings: Settings, remote: Backend, job_id: int, params: Params,
          items: list[Item], examples: tuple[Example, ...], snap: Snapshot,
          reserve_of: Callable[[Item], float]) -> list[str]:
    """Claim each post first (a 'pending' ledger row, its estimate reserved against the caps), then the remote
    job; rows become 'sent' once it exists, and stay claimed until collected, failed or cancelled.

    A post another run holds or has answered is left out (snap.skipped); a claim the caps refuse ends the
    submission there. A failed submission closes its rows as 'error' (nothing was accepted, so nothing is
    billed) and stops with one line; the remote jobs created before it stay recorded by the caller."""
    caps = ledger.Caps(settings.labeling.budget_job_usd, settings.labeling.budget_total_usd)
    sent: list[str] = []
    capped = False
    for chunk in _chunks(_payloads(settings, remote, params, items, examples, snap), remote.max_bytes,
                         remote.max_requests):
        claimed: list[tuple[int, Any]] = []
        for item, payload, _ in chunk:
            if capped:
                snap.skipped["budget cap reached, not submitted"] += 1
                snap.total -= 1
                continue
            got = ledger.claim(db, key=item.key, job_id=job_id, post_id=item.post_id, provider=params.provider,
                               model=params.model, prompt_version=params.prompt_version, mode="batch",
                               reserve_usd=reserve_of(item), caps=caps, label_source=params.source,
                               labeler=params.labeler)
            snap.interrupted += len(got.recovered)
            if got.call_id is not None:
                claimed.append((got.call_id, payload))
                continue
            snap.total -= 1
            if got.refused == "cap":
                capped = True
                snap.skipped["budget cap reached, not submitted"] += 1
            else:
                snap.skipped["labeled by another run" if got.refused == "done" else CLAIMED] += 1
        if not claimed:
            continue
        call_ids = [call_id for call_id, _ in claimed]
        try:
            remote_id = remote.send([payload for _, payload in claimed], params.model, job_id)
        except Exception as exc:
            with transaction(db):
                for call_id in call_ids:
                    ledger.complete(db, call_id, status="error", error=f"batch submission failed: {exc}"[:300])
            raise SubmitError(sent, f"{params.provider} refused the batch ({type(exc).__name__}: {str(exc)[:160]});"
                              f" {len(sent)} batch(es) were submitted before it") from None
        with transaction(db):
            for call_id in call_ids:
                db.execute("UPDATE api_calls SET status = 'sent', batch_id = ? WHERE id = ?", [remote_id, call_id])
        sent.append(remote_id)
    return sent


class SubmitError(BizsentError):
    def __init__(self, sent: list[str], message: str) -> None:
        super().__init__(message)
        self.sent = sent


def submit(db: sqlite_utils.Database, settings: Settings, plan: Plan, job_id: int | None = None) -> BatchReport:
    """Send the plan's posts as batch job(s); `job_id`: run an already queued job row instead of a new one."""
    params = plan.params
    remote = providers.batch_backend(settings, params.provider)
    open_keys = {r[0] for r in db.execute(
        "SELECT request_key FROM api_calls WHERE mode = 'batch' AND status IN ('pending', 'sent')")}
    items = [i for i in plan.items if i.key not in open_keys]
    snap = Snapshot(total=len(items), estimate_usd=plan.chosen.usd, skipped=plan.skipped.copy())
    if job_id is None:
        job_id = rows.create(db, "label", params.as_dict(), len(items), snap.counts("batch"))
    else:
        rows.take_over(db, job_id, len(items))
    try:
        sent = _send(db, settings, remote, job_id, params, items, plan.examples, snap, plan.usd_of)
    except SubmitError as exc:
        sent = exc.sent
        _record(db, job_id, params, sent)
        if not sent:
            rows.finish(db, job_id, "failed", str(exc))
        raise
    _record(db, job_id, params, sent)
    rows.progress(db, job_id, done=0, failed=0, total=snap.total, counts=snap.counts("batch"))
    if not sent:
        rows.finish(db, job_id, "done", "nothing submitted: " + (", ".join(
            f"{n} {r}" for r, n in sorted(snap.skipped.items())) or "no posts"))
    return BatchReport(job_id, snap.total, sent, skipped=dict(snap.skipped))


def _record(db: sqlite_utils.Database, job_id: int, params: Params, sent: list[str]) -> None:
    job_params = {**params.as_dict(), "batches": [{"id": r, "collected": False} for r in sent]}
    rows.set_remote(db, job_id, ",".join(sent), job_params)


def _items_for(db: sqlite_utils.Database, params: Params, post_ids: list[int]) -> list[Item]:
    out = []
    for post in post_ids:
        row = db.execute(
            "SELECT p.subject, p.text, i.path, i.sha256, coalesce(i.width, 0), coalesce(i.height, 0),"
            f" EXISTS (SELECT 1 FROM labels h WHERE h.post_id = p.id AND {human_test('h')})"
            " FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?", [post]).fetchone()
        if row:
            subject, text, path, sha, w, h, is_test = row
            out.append(Item(post, subject, text, path or "", sha or "", w, h, "test" if is_test else "unassigned",
                            ledger.request_key(post, sha or "", params.prompt_version, params.model)))
    return out


def open_jobs(db: sqlite_utils.Database, job_id: int | None = None) -> list[dict[str, Any]]:
    """Batch jobs still waiting for remote results."""
    return [job for job in rows.listing(db, "label")
            if job["params"].get("mode") == "batch" and job["state"] == "running"
            and (job_id is None or job["id"] == job_id)]


def collect(db: sqlite_utils.Database, settings: Settings, job_id: int | None = None) -> list[str]:
    """One pass over running batch jobs: fetch finished results, resubmit failures; return a line per job."""
    lines = [_collect_job(db, settings, job) for job in open_jobs(db, job_id)]
    return lines or ["no batch jobs waiting for results"]


def collect_until_done(db: sqlite_utils.Database, settings: Settings, job_id: int | None = None,
                       interval_s: float = 60.0, echo: Callable[[str], None] = print,
                       sleep: Callable[[float], None] = time.sleep) -> None:
    """`batches collect --wait`: collect, then poll every `interval_s` until no batch job is open."""
    while True:
        for line in collect(db, settings, job_id):
            echo(line)
        if not open_jobs(db, job_id):
            return
        sleep(interval_s)


COLLECT_KIND = "batch-collect"


def queue_collect(db: sqlite_utils.Database, label_job: int | None, interval_s: float) -> int:
    """A `batch-collect` job row: `collect --wait` for one labeling job (or every open one) as a job of its own."""
    return rows.queue(db, COLLECT_KIND, {"label_job": label_job, "interval_s": interval_s})


def run_collect_job(db: sqlite_utils.Database, settings: Settings, job_id: int,
                    echo: Callable[[str], None] = print) -> None:
    """Run (or resume) a batch-collect row here, with its heartbeat; a cancel ends it at its next wait."""
    from bizsent.core.errors import Cancelled
    from bizsent.jobs.heartbeat import running

    job = rows.of_kind(db, job_id, COLLECT_KIND)
    target, interval = job["params"].get("label_job"), float(job["params"].get("interval_s", 60.0))
    total = len(open_jobs(db, target))
    with running(db, job_id, total) as beat:

        def report(line: str) -> None:
            echo(line)
            left = len(open_jobs(db, target))
            if rows.progress(db, job_id, done=max(0, total - left), failed=0, total=total,
                             counts={"last": line}) == "cancelled":
                raise Cancelled(f"job {job_id} cancelled")

        def wait(seconds: float) -> None:
            if beat.cancelled.wait(seconds):
                raise Cancelled(f"job {job_id} cancelled")

        collect_until_done(db, settings, target, interval, echo=report, sleep=wait)


def _collect_job(db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> str:
    p = job["params"]
    # The job's own record, never the config as it is now: labels are filed under the labeler name its requests
    # were sent as, and billed at the price it was estimated and confirmed at.
    params = Params.from_dict(p, settings)
    remote = providers.batch_backend(settings, params.provider)
    before = job["counts"]  # what submit recorded: the estimate and skip reasons outlive each collect
    snap = Snapshot(total=job["total"] or 0, done=job["done"], failed=job["failed"],
                    estimate_usd=before.get("estimate_usd", 0.0), skipped=Counter(before.get("skipped", {})))
    snap.usd = ledger.job_usd(db, job["id"])
    retry_posts: list[int] = []
    waiting = []
    for entry in p.get("batches", []):
        if entry["collected"]:
            continue
        open_rows = db.execute(
            "SELECT id, request_key, post_id FROM api_calls WHERE job_id = ? AND status = 'sent' AND batch_id = ?"
            " ORDER BY id", [job["id"], entry["id"]]).fetchall()
        polled = remote.poll(entry["id"], [key for _, key, _ in open_rows])
        if not polled.finished:
            waiting.append(f"{entry['id']} {polled.state}")
            continue
        for call_id, key, post in open_rows:
            result = polled.results.get(key)
            if result is None or result.body is None:
                reason = result.error if result else f"batch {polled.state} without an answer"
                ledger.complete(db, call_id, status="error", error=(reason or "no answer")[:300])
                retry_posts.append(post)
                continue
            outcome = remote.outcome(result.body)
            usd = params.usd(outcome.tokens_in, outcome.tokens_out)
            snap.usd += usd
            path = ledger.save_response(settings.data_dir, key, call_id, result.body)
            common = dict(tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out, usd=usd, response_path=path)
            if outcome.answer is None:
                ledger.complete(db, call_id, status="invalid", error=outcome.error, **common)
                retry_posts.append(post)
                continue
            split = "test" if db.execute(f"SELECT 1 FROM labels WHERE post_id = ? AND {HUMAN_TEST}",
                                         [post]).fetchone() else "unassigned"
            a = outcome.answer
            with transaction(db):
                ledger.complete(db, call_id, status="ok", **common)
                set_label(db, post, NewLabel(label=a.label, source=params.source, split=split,
                                             labeler=params.labeler, confidence=a.confidence, sarcastic=a.sarcastic,
                                             unsure=a.confidence < 0.5, rationale=a.rationale))
            snap.done += 1
        entry["collected"] = True
    resubmitted = _resubmit(db, settings, remote, job, params, retry_posts, snap)
    rows.set_remote(db, job["id"], ",".join(e["id"] for e in p["batches"]), p)
    rows.progress(db, job["id"], done=snap.done, failed=snap.failed, total=snap.total, counts=snap.counts("batch"))
    if all(e["collected"] for e in p["batches"]):
        rows.finish(db, job["id"], "done")
        return f"job {job['id']} done: labeled {snap.done}, failed {snap.failed}, spent ${snap.usd:.4f}"
    more = f"; resubmitted {resubmitted}" if resubmitted else ""
    return f"job {job['id']} waiting: {', '.join(waiting) or 'new batches'}; labeled {snap.done} so far{more}"


def _resubmit(db: sqlite_utils.Database, settings: Settings, remote: Backend, job: dict[str, Any], params: Params,
              posts: list[int], snap: Snapshot) -> int:
    """Send failed posts again in a new batch while they have attempts left; give up on the rest."""
    again = []
    for post in posts:
        tries = db.execute("SELECT count(*) FROM api_calls WHERE job_id = ? AND post_id = ?",
                           [job["id"], post]).fetchone()[0]
        if tries <= settings.labeling.max_retries:
            again.append(post)
        else:
            snap.failed += 1
            snap.errors["gave up after retries"] += 1
    if not again:
        return 0
    examples, problems = few_shot_examples(db, params.few_shot, settings.images.max_pixels, params.examples)
    if problems or len(examples) != len(params.examples or ()):
        # The same prompt cannot be rebuilt, so a resubmitted answer would be filed under a name it does not
        # deserve: give up on these posts instead.
        snap.failed += len(again)
        snap.errors[f"not resubmitted: {problems[0] if problems else 'few-shot examples changed'}"] += len(again)
        return 0
    per_post = snap.estimate_usd / max(1, snap.total)
    try:
        sent = _send(db, settings, remote, job["id"], params, _items_for(db, params, again), examples, snap,
                     lambda item: per_post)
    except SubmitError as exc:
        sent = exc.sent
        snap.errors["resubmission refused"] += 1
    for remote_id in sent:
        job["params"]["batches"].append({"id": remote_id, "collected": False})
    return len(again)


def cancel(db: sqlite_utils.Database, settings: Settings, job_id: int) -> str:
    """Cancel a job: remote batch jobs are cancelled at the provider; a live run stops at its next request."""
    job = rows.get(db, job_id)
    if job is None:
        raise BizsentError(f"no job {job_id}; see `bizsent batches list`")
    if job["state"] not in ("running", "queued"):
        return f"job {job_id} is already {job['state']}"
    if job["params"].get("mode") == "batch" and job["params"].get("batches"):
        remote = providers.batch_backend(settings, job["params"]["provider"])
        for entry in job["params"]["batches"]:
            if not entry["collected"]:
                remote.cancel(entry["id"])
        # The provider may still bill what it finished before the cancel; those answers are not collected.
        db.execute("UPDATE api_calls SET status = 'cancelled', error = 'batch cancelled by the user',"
                   " completed_at = ? WHERE job_id = ? AND status IN ('pending', 'sent')", [now(), job_id])
    # A live run reads its row between requests and stops when it sees 'cancelled'.
    rows.finish(db, job_id, "cancelled", "cancelled by the user")
    return f"job {job_id} cancelled"


def command(db: sqlite_utils.Database, settings: Settings, action: str, job_id: int | None) -> str:
    from bizsent.jobs import views

    if action == "list":
        return views.render_list(views.listing(db, "label"),
                                 "no labeling jobs yet; start one with `bizsent label`")
    if action in ("show", "cancel") and job_id is None:
        raise BizsentError(f"`bizsent batches {action}` needs a job id; see `bizsent batches list`")
    if action == "show":
        return views.render_job(views.one(db, job_id))  # type: ignore[arg-type]
    if action == "cancel":
        return cancel(db, settings, job_id)  # type: ignore[arg-type]
    if action == "collect":
        return "\n".join(collect(db, settings, job_id))
    raise BizsentError(f"unknown action {action!r}; use list, show, cancel or collect")
