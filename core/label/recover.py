"""`bizsent recover`: paid answers that never reached the database, put back from the raw responses.

Every answer a provider sends back is written to responses/<key[:2]>/<key>-<call>.json (ledger.save_response)
before its ledger row and label are written. If those writes never landed (the database file was moved or
replaced under a running job and the job stopped, core.store.check_identity; a full disk), the file is the only
copy of something paid for. Recovery reads every response file the ledger does not know, finds its request by
its key (the ledger's rows, or the post, image, prompt and model of the labeling jobs this database recorded),
judges the body with its provider's parser, and writes the ledger row (with its cost) and, for a usable answer,
the label, one transaction each. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.label import ledger, providers
from bizsent.core.label.planning import Params
from bizsent.core.store import now, transaction
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel


@dataclass(slots=True)
class RecoverReport:
    files: int = 0
    known: int = 0  # already in the ledger
    restored: int = 0  # answers written back, with their labels
    invalid: int = 0  # paid, but no usable answer: the cost written back
    unmatched: int = 0  # no request of this database has that key

    def summary(self) -> str:
        return (f"recover: {self.files} response files; {self.known} already in the ledger, {self.restored} answers"
                f" restored with their labels, {self.invalid} paid without a usable answer (cost recorded),"
                f" {self.unmatched} matching no request of this database")


@dataclass(frozen=True, slots=True)
class _Origin:
    post_id: int
    params: Params
    job_id: int | None
    split: str


def _origins(db: sqlite_utils.Database, settings: Settings) -> dict[str, _Origin]:
    """Request key -> what was asked, for every labeling job this database recorded."""
    jobs: list[tuple[int, Params]] = []
    for job_id, raw in db.execute("SELECT id, params FROM jobs WHERE kind = 'label'"):
        p = json.loads(raw or "{}")
        if p.get("provider") in providers.names() and p.get("model"):
            jobs.append((job_id, Params.from_dict(p, settings)))
    out: dict[str, _Origin] = {}
    posts = db.execute(
        "SELECT p.id, i.sha256, EXISTS (SELECT 1 FROM labels h WHERE h.post_id = p.id AND h.source = 'human'"
        " AND h.split = 'test') FROM posts p JOIN images i ON i.id = p.image_id").fetchall()
    for job_id, params in jobs:
        for post_id, sha, is_test in posts:
            key = ledger.request_key(post_id, sha or "", params.prompt_version, params.model)
            out.setdefault(key, _Origin(post_id, params, job_id, "test" if is_test else "unassigned"))
    return out


def recover_answers(db: sqlite_utils.Database, settings: Settings) -> RecoverReport:
    report = RecoverReport()
    folder = settings.data_dir / "responses"
    files = sorted(folder.glob("*/*.json")) if folder.is_dir() else []
    report.files = len(files)
    origins = _origins(db, settings) if files else {}
    for path in files:
        key = path.stem.rsplit("-", 1)[0]
        if db.execute("SELECT 1 FROM api_calls WHERE response_path = ? OR (request_key = ? AND status = 'ok')",
                      [str(path), key]).fetchone():
            report.known += 1
            continue
        origin = origins.get(key)
        if origin is None:
            report.unmatched += 1
            continue
        _restore(db, path, key, origin, report)
    return report


def _restore(db: sqlite_utils.Database, path: Path, key: str, origin: _Origin, report: RecoverReport) -> None:
    params = origin.params
    outcome = providers.get(params.provider).outcome_of_raw(json.loads(path.read_text(encoding="utf-8")))
    usd = params.usd(outcome.tokens_in, outcome.tokens_out)
    status = "ok" if outcome.answer is not None else "invalid"
    with transaction(db):
        # The claim that reached the database (open, or closed as maybe paid) becomes the answer; else a new row.
        row = db.execute("SELECT id FROM api_calls WHERE request_key = ? AND status IN ('pending', 'sent',"
                         " 'interrupted') ORDER BY id DESC LIMIT 1", [key]).fetchone()
        call_id = row[0] if row else ledger.begin(
            db, key=key, job_id=origin.job_id, post_id=origin.post_id, provider=params.provider, model=params.model,
            prompt_version=params.prompt_version, mode=params.mode)
        db.execute("UPDATE api_calls SET status = ?, tokens_in = ?, tokens_out = ?, usd = ?, response_path = ?,"
                   " error = ?, completed_at = ? WHERE id = ?",
                   [status, outcome.tokens_in, outcome.tokens_out, usd, str(path),
                    "restored by `bizsent recover` from its saved response" if status == "ok" else outcome.error,
                    now(), call_id])
        if outcome.answer is not None:
            answer = outcome.answer
            set_label(db, origin.post_id, NewLabel(
                label=answer.label, source=params.source, split=origin.split, labeler=params.labeler,
                confidence=answer.confidence, sarcastic=answer.sarcastic, unsure=answer.confidence < 0.5,
                rationale=answer.rationale))
    if outcome.answer is not None:
        report.restored += 1
    else:
        report.invalid += 1
