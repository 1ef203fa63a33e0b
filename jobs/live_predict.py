"""Predictions as posts arrive: after a collection round, new candidate posts are scored by the deployed endpoint.

- Through the serverless endpoint (live.endpoint, the same client as `bizsent predict --endpoint`), one request a
  post with its stored image and text (the worker applies the training input rule: pixel budget, cleaning, prompt).
- Never on this machine for the 7B without a GPU: `local_refusal` says so with the estimate (a CPU would need about
  live.cpu_s_per_post_7b seconds a post).
- Money: each request is claimed in the cost ledger before it is sent and completed with what RunPod reports it
  executed (core.label.ledger). RunPod bills a worker from its start, which no request reports: a round that sends
  anything books one worker start first (serverless.cold_start_s, an estimate; mode WORKER_START), since an hourly
  round finds the worker stopped. A round sends no more than the day's budget left (live.daily_budget_usd, a UTC
  day, counted from the ledger, starts included, less this round's start), and the posts left over wait.
- Predictions land in `predictions` under one `runs` row per endpoint (kind 'endpoint').
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label.ledger import begin, claim, complete, mark_sent, request_key
from bizsent.core.labels import PROMPT_VERSION
from bizsent.core.serve.endpoint import EndpointClient, job_input
from bizsent.core.store import now, transaction
from bizsent.core.store.posts import CANDIDATE_SQL

PROVIDER = "runpod-serverless"
WORKER_START = "worker-start"  # the ledger's mode for a round's estimated worker start (requests are 'live')
FAILURES_IN_A_ROW = 3  # the endpoint is down or misconfigured: the round stops, the next one tries again


@dataclass
class PredictReport:
    scored: int = 0
    failed: int = 0
    waiting: int = 0  # new posts left for a later round (budget or per-round limit)
    usd: float = 0.0  # executed time of the requests, as RunPod reports it
    start_usd: float = 0.0  # the worker start booked for the round (an estimate)
    budget_left_usd: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"predictions: {self.scored} new posts scored for ${self.usd:.4f} (executed time), {self.failed} "
                f"failed, {self.waiting} waiting; ${self.budget_left_usd:.4f} of today's budget left")
        if self.start_usd:
            line += f"; worker start ${self.start_usd:.4f} (estimated)"
        return line + (f"; first problem: {self.problems[0]}" if self.problems else "")


def local_refusal(settings: Settings, posts: int, cuda: bool) -> str | None:
    """Why new posts are not scored on this machine: the 7B without a GPU, with what it would take."""
    base = settings.train.base_model
    if cuda or "7b" not in base.lower():
        return None
    hours = posts * settings.live.cpu_s_per_post_7b / 3600
    return (f"not scoring {posts} new posts with {base} on this CPU: about {hours:.1f} h at "
            f"{settings.live.cpu_s_per_post_7b:g} s a post (an estimate, live.cpu_s_per_post_7b); set live.endpoint "
            "to a deployed serverless endpoint (docs/serving.md) to score them as they arrive")


def today_usd(db: sqlite_utils.Database) -> float:
    """Serverless dollars of the current UTC day: settled cost, else what was reserved (maybe billed)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).isoformat(timespec="seconds")
    return db.execute("SELECT coalesce(sum(coalesce(usd, reserved_usd, 0)), 0) FROM api_calls WHERE provider = ?"
                      " AND created_at >= ? AND status != 'abandoned'", [PROVIDER, midnight]).fetchone()[0]


def endpoint_run(db: sqlite_utils.Database, endpoint: str, settings: Settings) -> int:
    """The runs row the endpoint's predictions belong to (one per endpoint ID)."""
    name = f"endpoint:{endpoint}"
    row = db.execute("SELECT id FROM runs WHERE kind = 'endpoint' AND name = ?", [name]).fetchone()
    if row:
        return row[0]
    return db.execute("INSERT INTO runs (kind, name, base_model, state, params, created_at) VALUES"
                      " ('endpoint', ?, ?, 'done', ?, ?)",
                      [name, settings.train.base_model, json.dumps({"endpoint": endpoint}), now()]).lastrowid


def predict_new(db: sqlite_utils.Database, settings: Settings, client: EndpointClient) -> PredictReport:
    """Score the newest unscored candidates within today's budget (see the module doc)."""
    cfg = settings.serverless
    per_post = cfg.s_per_post * cfg.usd_per_s
    run_id = endpoint_run(db, client.endpoint, settings)
    left = settings.live.daily_budget_usd - today_usd(db)
    allowed = max(0, math.floor((left - cfg.cold_start_s * cfg.usd_per_s) / per_post + 1e-9))
    rows = db.execute(
        "SELECT p.id, p.text, p.subject, i.path, i.sha256 FROM posts p JOIN images i ON i.id = p.image_id"
        f" WHERE {CANDIDATE_SQL} AND NOT EXISTS (SELECT 1 FROM predictions r WHERE r.post_id = p.id AND"
        " r.run_id = ?) ORDER BY p.time DESC, p.id DESC", [run_id]).fetchall()
    report = PredictReport()
    todo = rows[:min(allowed, settings.live.max_posts_per_round)]
    report.waiting = len(rows) - len(todo)
    if todo:
        report.start_usd = book_start(db, client.endpoint, settings)
    in_a_row = 0
    for post_id, text, subject, path, sha256 in todo:
        if in_a_row >= FAILURES_IN_A_ROW:
            report.waiting += len(todo) - report.scored - report.failed
            break
        ok = _one(db, settings, client, run_id, post_id, text, subject, settings.image_dir / path, sha256,
                  per_post, report)
        in_a_row = 0 if ok else in_a_row + 1
    report.budget_left_usd = max(0.0, settings.live.daily_budget_usd - today_usd(db))
    return report


def book_start(db: sqlite_utils.Database, endpoint: str, settings: Settings) -> float:
    """One worker start in the ledger, before the round's first request (see the module doc); returns its cost."""
    usd = settings.serverless.cold_start_s * settings.serverless.usd_per_s
    call_id = begin(db, key=f"{WORKER_START}:{endpoint}:{now()}", job_id=None, post_id=None, provider=PROVIDER,
                    model=endpoint, prompt_version=PROMPT_VERSION, mode=WORKER_START, reserved_usd=usd)
    complete(db, call_id, status="ok", usd=usd)
    return usd


def _one(db: sqlite_utils.Database, settings: Settings, client: EndpointClient, run_id: int, post_id: int,
         text: str, subject: str, image, sha256: str, per_post: float, report: PredictReport) -> bool:
    key = request_key(post_id, sha256 or "", PROMPT_VERSION, f"endpoint:{client.endpoint}")
    got = claim(db, key=key, job_id=None, post_id=post_id, provider=PROVIDER, model=client.endpoint,
                prompt_version=PROMPT_VERSION, reserve_usd=per_post)
    if not got.ok:
        return True  # answered before, or another process holds it
    mark_sent(db, got.call_id)
    try:
        answer = client.predict(job_input(text, image, subject))
    except BizsentError as exc:
        complete(db, got.call_id, status="error", error=str(exc))
        report.failed += 1
        report.problems.append(str(exc))
        return False
    usd = answer.execution_s * settings.serverless.usd_per_s
    with transaction(db):
        complete(db, got.call_id, status="ok", usd=usd, latency_ms=answer.latency_ms)
        db.execute("INSERT INTO predictions (run_id, post_id, label, probs, latency_ms, created_at) VALUES"
                   " (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, post_id) DO NOTHING",
                   [run_id, post_id, answer.label, json.dumps(answer.probabilities), answer.latency_ms, now()])
    report.scored += 1
    report.usd += usd
    return True


def live_round(db: sqlite_utils.Database, settings: Settings) -> str:
    """The predictions part of a collection round, as one line: scored through live.endpoint, or why not."""
    endpoint = settings.live.endpoint
    if not endpoint:
        waiting = db.execute(f"SELECT count(*) FROM posts p JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
                             " AND NOT EXISTS (SELECT 1 FROM predictions r WHERE r.post_id = p.id)").fetchone()[0]
        refusal = local_refusal(settings, waiting, _cuda())
        return f"predictions: {refusal or 'off (set live.endpoint to score new posts as they arrive)'}"
    from bizsent.core.config import secret

    client = EndpointClient(settings.runpod.serverless_base, endpoint, secret("runpod"), settings.serverless)
    try:
        return predict_new(db, settings, client).summary()
    finally:
        client.close()


def _cuda() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
