"""Batch API labeling (OpenAI `/v1/batches`, half price) and the `bizsent batches` / `costs` views.

`submit` writes a ledger row per request (status 'sent', mode 'batch'), uploads JSONL files and records the
remote batch ids in the job row, so any later process can `collect`: poll each remote batch, download its
output, complete the ledger rows, write labels, and resubmit the failures (up to labeling.max_retries).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from core import ledger
from core.config import Settings, secret
from core.errors import BizsentError
from core.labelers.base import Request, provider_settings
from core.labels import image_jpeg, user_prompt
from core.posts import set_label
from core.records import NewLabel
from core.store import transaction
from jobs import rows
from jobs.labeling import SOURCE_OF, Item, Params, Plan, Snapshot

MAX_FILE_BYTES = 150 * 1024 * 1024  # OpenAI accepts 200 MB per batch file; stay well below
MAX_LINES = 40_000  # and 50,000 requests per batch
FINISHED = ("completed", "failed", "expired", "cancelled")


@dataclass(slots=True)
class BatchReport:
    job_id: int
    submitted: int
    remote_ids: list[str]
    state: str = "running"

    def summary(self) -> str:
        return (f"job {self.job_id}: submitted {self.submitted} requests in batch(es) {', '.join(self.remote_ids)};"
                " run `bizsent batches collect` later to fetch the results")


def _client(settings: Settings, provider: str):
    import openai

    if provider != "openai":
        raise BizsentError(f"batch mode for {provider} is not available yet; run it live (without --batch)")
    conf = provider_settings(settings, provider)
    return openai.OpenAI(api_key=secret("openai"), base_url=conf.base_url, max_retries=3)


def _lines(settings: Settings, params: Params, items: list[Item], snap: Snapshot) -> list[tuple[Item, bytes]]:
    from core.labelers.openai_chat import request_body

    conf = provider_settings(settings, params.provider)
    out = []
    for item in items:
        try:
            jpeg = image_jpeg(item.image_path, settings.images.max_pixels)
        except (OSError, ValueError) as exc:
            snap.skipped[f"image unreadable: {type(exc).__name__}"] += 1
            continue
        body = request_body(Request(item.key, user_prompt(item.subject, item.text), jpeg), params.model, conf.detail)
        line = {"custom_id": item.key, "method": "POST", "url": "/v1/chat/completions", "body": body}
        out.append((item, (json.dumps(line) + "\n").encode()))
    return out


def _chunks(lines: list[tuple[Item, bytes]]) -> list[list[tuple[Item, bytes]]]:
    chunks: list[list[tuple[Item, bytes]]] = [[]]
    size = 0
    for entry in lines:
        if chunks[-1] and (size + len(entry[1]) > MAX_FILE_BYTES or len(chunks[-1]) >= MAX_LINES):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += len(entry[1])
    return [c for c in chunks if c]


def _send(db: sqlite_utils.Database, client: Any, job_id: int, params: Params, items: list[Item],
          settings: Settings, snap: Snapshot) -> list[str]:
    """Ledger rows first (status 'pending'), then upload + create; rows become 'sent' once the batch exists."""
    remote = []
    for chunk in _chunks(_lines(settings, params, items, snap)):
        call_ids = [ledger.begin(db, key=item.key, job_id=job_id, post_id=item.post_id, provider=params.provider,
                                 model=params.model, prompt_version=params.prompt_version, mode="batch")
                    for item, _ in chunk]
        upload = client.files.create(file=("batch.jsonl", io.BytesIO(b"".join(line for _, line in chunk))),
                                     purpose="batch")
        created = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                        completion_window="24h", metadata={"bizsent_job": str(job_id)})
        with transaction(db):
            for call_id in call_ids:
                db.execute("UPDATE api_calls SET status = 'sent', batch_id = ? WHERE id = ?", [created.id, call_id])
        remote.append(created.id)
    return remote


def submit(db: sqlite_utils.Database, settings: Settings, plan: Plan) -> BatchReport:
    params = plan.params
    client = _client(settings, params.provider)
    open_keys = {r[0] for r in db.execute(
        "SELECT request_key FROM api_calls WHERE mode = 'batch' AND status IN ('pending', 'sent')")}
    items = [i for i in plan.items if i.key not in open_keys]
    snap = Snapshot(total=len(items), estimate_usd=plan.chosen.usd, skipped=plan.skipped.copy())
    job_id = rows.create(db, "label", params.as_dict(), len(items), snap.counts("batch"))
    remote = _send(db, client, job_id, params, items, settings, snap)
    job_params = {**params.as_dict(), "batches": [{"id": r, "collected": False} for r in remote]}
    rows.set_remote(db, job_id, ",".join(remote), job_params)
    rows.progress(db, job_id, done=0, failed=0, total=len(items), counts=snap.counts("batch"))
    return BatchReport(job_id, len(items), remote)


def _items_for(db: sqlite_utils.Database, params: Params, post_ids: list[int]) -> list[Item]:
    out = []
    for post in post_ids:
        row = db.execute(
            "SELECT p.subject, p.text, i.path, i.sha256, coalesce(i.width, 0), coalesce(i.height, 0),"
            " EXISTS (SELECT 1 FROM labels h WHERE h.post_id = p.id AND h.source = 'human' AND h.split = 'test')"
            " FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?", [post]).fetchone()
        if row:
            subject, text, path, sha, w, h, is_test = row
            out.append(Item(post, subject, text, path or "", sha or "", w, h, "test" if is_test else "unassigned",
                            ledger.request_key(post, sha or "", params.prompt_version, params.model)))
    return out


def collect(db: sqlite_utils.Database, settings: Settings, job_id: int | None = None) -> list[str]:
    """One pass over running batch jobs: fetch finished results, resubmit failures; return a line per job."""
    lines = []
    for job in rows.listing(db, "label"):
        if job["params"].get("mode") != "batch" or job["state"] != "running":
            continue
        if job_id is not None and job["id"] != job_id:
            continue
        lines.append(_collect_job(db, settings, job))
    return lines or ["no batch jobs waiting for results"]


def _collect_job(db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> str:
    from core.labelers.openai_chat import outcome_of_body

    p = job["params"]
    params = Params(p["provider"], p["model"], "batch", p.get("limit"), settings.labeling.few_shot)
    conf = provider_settings(settings, params.provider)
    client = _client(settings, params.provider)
    snap = Snapshot(total=job["total"] or 0, done=job["done"], failed=job["failed"])
    snap.usd = ledger.job_usd(db, job["id"])
    retry_posts: list[int] = []
    waiting = []
    for entry in p.get("batches", []):
        if entry["collected"]:
            continue
        remote = client.batches.retrieve(entry["id"])
        if remote.status not in FINISHED:
            waiting.append(f"{entry['id']} {remote.status}")
            continue
        answered = _results(client, remote.output_file_id) | _results(client, remote.error_file_id)
        for call_id, key, post in db.execute(
            "SELECT id, request_key, post_id FROM api_calls WHERE job_id = ? AND status = 'sent' AND batch_id = ?",
            [job["id"], entry["id"]],
        ).fetchall():
            line = answered.get(key)
            body = ((line or {}).get("response") or {}).get("body") if line else None
            if body is None:
                reason = json.dumps((line or {}).get("error")) if line else f"batch {remote.status} without an answer"
                ledger.complete(db, call_id, status="error", error=reason[:300])
                retry_posts.append(post)
                continue
            outcome = outcome_of_body(body)
            usd = ledger.price(conf, outcome.tokens_in, outcome.tokens_out, "batch")
            snap.usd += usd
            path = ledger.save_response(settings.data_dir, key, call_id, body)
            common = dict(tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out, usd=usd, response_path=path)
            if outcome.answer is None:
                ledger.complete(db, call_id, status="invalid", error=outcome.error, **common)
                retry_posts.append(post)
                continue
            split = "test" if db.execute("SELECT 1 FROM labels WHERE post_id = ? AND source = 'human' AND"
                                         " split = 'test'", [post]).fetchone() else "unassigned"
            a = outcome.answer
            with transaction(db):
                ledger.complete(db, call_id, status="ok", **common)
                set_label(db, post, NewLabel(label=a.label, source=SOURCE_OF[params.provider], split=split,
                                             labeler=params.labeler, confidence=a.confidence, sarcastic=a.sarcastic,
                                             unsure=a.confidence < 0.5, rationale=a.rationale))
            snap.done += 1
        entry["collected"] = True
    resubmitted = _resubmit(db, settings, client, job, params, retry_posts, snap)
    rows.set_remote(db, job["id"], ",".join(e["id"] for e in p["batches"]), p)
    rows.progress(db, job["id"], done=snap.done, failed=snap.failed, total=snap.total, counts=snap.counts("batch"))
    if all(e["collected"] for e in p["batches"]):
        rows.finish(db, job["id"], "done")
        return f"job {job['id']} done: labeled {snap.done}, failed {snap.failed}, spent ${snap.usd:.4f}"
    more = f"; resubmitted {resubmitted}" if resubmitted else ""
    return f"job {job['id']} waiting: {', '.join(waiting) or 'new batches'}; labeled {snap.done} so far{more}"


def _resubmit(db: sqlite_utils.Database, settings: Settings, client: Any, job: dict[str, Any], params: Params,
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
    for remote in _send(db, client, job["id"], params, _items_for(db, params, again), settings, snap):
        job["params"]["batches"].append({"id": remote, "collected": False})
    return len(again)


def _results(client: Any, file_id: str | None) -> dict[str, dict[str, Any]]:
    if not file_id:
        return {}
    text = client.files.content(file_id).text
    out = {}
    for raw in text.splitlines():
        if raw.strip():
            line = json.loads(raw)
            out[line["custom_id"]] = line
    return out


def cancel(db: sqlite_utils.Database, settings: Settings, job_id: int) -> str:
    job = rows.get(db, job_id)
    if job is None:
        raise BizsentError(f"no job {job_id}; see `bizsent batches list`")
    if job["state"] not in ("running", "queued"):
        return f"job {job_id} is already {job['state']}"
    if job["params"].get("mode") == "batch":
        client = _client(settings, job["params"]["provider"])
        for entry in job["params"].get("batches", []):
            if not entry["collected"]:
                client.batches.cancel(entry["id"])
    # A live run reads its row between requests and stops when it sees 'cancelled'.
    rows.finish(db, job_id, "cancelled", "cancelled by the user")
    return f"job {job_id} cancelled"


def render_list(db: sqlite_utils.Database) -> str:
    jobs = rows.listing(db, "label")
    if not jobs:
        return "no labeling jobs yet; start one with `bizsent label`"
    out = [f"{'id':>4} {'state':<9} {'mode':<5} {'provider':<10} {'model':<24} {'done':>6} {'failed':>6} {'total':>6}"
           f" {'USD':>9} {'estimate':>9}  started"]
    for j in jobs:
        c, p = j["counts"], j["params"]
        out.append(f"{j['id']:>4} {j['state']:<9} {p.get('mode', ''):<5} {p.get('provider', ''):<10}"
                   f" {p.get('model', '')[:24]:<24} {j['done']:>6} {j['failed']:>6} {j['total'] or 0:>6}"
                   f" {c.get('usd', 0):>9.4f} {c.get('estimate_usd', 0):>9.4f}  {j['started_at']}")
    return "\n".join(out)


def render_job(db: sqlite_utils.Database, job_id: int) -> str:
    job = rows.get(db, job_id)
    if job is None:
        raise BizsentError(f"no job {job_id}; see `bizsent batches list`")
    out = [f"job {job_id}: {job['kind']} {job['state']}" + (f" ({job['error']})" if job["error"] else "")]
    for key in ("params", "counts"):
        out.append(f"{key}: {json.dumps(job[key], sort_keys=True)}")
    out.append(f"progress {job['progress']:.0%}: done {job['done']}, failed {job['failed']}, total {job['total']};"
               f" remote {job['remote_id'] or '-'}; heartbeat {job['heartbeat_at']}; pid {job['pid']}")
    return "\n".join(out)


def command(db: sqlite_utils.Database, settings: Settings, action: str, job_id: int | None) -> str:
    if action == "list":
        return render_list(db)
    if action in ("show", "cancel") and job_id is None:
        raise BizsentError(f"`bizsent batches {action}` needs a job id; see `bizsent batches list`")
    if action == "show":
        return render_job(db, job_id)  # type: ignore[arg-type]
    if action == "cancel":
        return cancel(db, settings, job_id)  # type: ignore[arg-type]
    if action == "collect":
        return "\n".join(collect(db, settings, job_id))
    raise BizsentError(f"unknown action {action!r}; use list, show, cancel or collect")


def render_costs(db: sqlite_utils.Database) -> str:
    out = [f"total spend recorded: ${ledger.total_usd(db):.4f}"]
    for column in ("provider", "model", "job", "day"):
        rows_ = ledger.spend_by(db, column)
        out.append("")
        out.append(f"by {column}:")
        out.append(f"  {column:<36} {'calls':>7} {'ok':>7} {'tokens in':>12} {'tokens out':>11} {'USD':>10}"
                   f" {'maybe paid twice':>16}")
        for r in rows_:
            out.append(f"  {str(r[column])[:36]:<36} {r['calls']:>7} {r['ok']:>7} {r['tokens_in']:>12,}"
                       f" {r['tokens_out']:>11,} {r['usd']:>10.4f} {r['interrupted']:>16}")
    return "\n".join(out)
