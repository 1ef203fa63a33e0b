"""Export: posts or labels to JSONL or CSV, in the file format core.collect.transfer documents and imports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import sqlite_utils
from bizsent.core.collect.transfer import JSONL_SUFFIXES, LABEL_FIELDS, POST_FIELDS
from bizsent.core.errors import BizsentError
from bizsent.core.label import providers
from bizsent.core.labels import API_SOURCE, SPLITS, origin_sql


def export_file(db: sqlite_utils.Database, path: Path, *, what: str = "labels", source: str | None = None,
                split: str | None = None) -> int:
    """Write posts or labels to `path` (.jsonl or .csv) in the format `import_file` reads; return the count."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in JSONL_SUFFIXES | {".csv"}:
        raise BizsentError(f"cannot export to {path.name}: use a .jsonl or .csv file name")
    if what not in {"labels", "posts"}:
        raise BizsentError(f"--what {what} is not exportable; use labels or posts")
    if source is not None and source not in (*providers.origins(), API_SOURCE):
        raise BizsentError(f"--source {source} is not a label source; use one of {', '.join(providers.origins())}"
                           f" or {API_SOURCE} (every provider)")
    if split is not None and split not in SPLITS:
        raise BizsentError(f"--split {split} is not a split; use one of {', '.join(SPLITS)}")
    fields = POST_FIELDS + (LABEL_FIELDS if what == "labels" else [])
    rows = [dict(zip(fields, values, strict=True)) for values in db.execute(*_export_query(what, source, split))]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        if suffix == ".csv":
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return len(rows)


def _export_query(what: str, source: str | None, split: str | None) -> tuple[str, list]:
    post_cols = (
        "p.board, p.thread_no, p.post_no, p.is_op, p.time, p.subject, p.text, p.html, p.source, i.url,"
        " CASE WHEN i.status = 'ok' THEN i.path END"
    )
    where, params = [], []
    if source:  # a provider's name (openai) picks its labels, api picks every provider's
        where.append("l.source = ?" if source == API_SOURCE else f"{origin_sql('l')} = ?")
        params.append(source)
    if split:
        where.append("l.split = ?")
        params.append(split)
    if what == "labels":
        sql = (
            f"SELECT {post_cols}, l.label, l.source, l.labeler, l.split, l.confidence, l.sarcastic, l.unsure,"
            " l.rationale, l.sampling FROM labels l JOIN posts p ON p.id = l.post_id"
            " LEFT JOIN images i ON i.id = p.image_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY p.board, p.post_no, l.source, l.labeler"
        )
    else:
        # Posts filtered by source/split: those that have such a label.
        exists = (" WHERE EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id AND " + " AND ".join(where) + ")"
                  if where else "")
        sql = (f"SELECT {post_cols} FROM posts p LEFT JOIN images i ON i.id = p.image_id{exists}"
               " ORDER BY p.board, p.post_no")
    return sql, params
