"""What is in the store: counts by source, split and label, image states, disk use and money spent.

`bizsent status` prints it; `--json` prints the dict itself, so scripts can read the same numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils
from bizsent.core.labels import LABELS, origin_sql
from bizsent.core.store import db_path
from bizsent.core.store.posts import CANDIDATE_SQL


def _pairs(db: sqlite_utils.Database, sql: str) -> dict[str, int]:
    return {str(key): count for key, count in db.execute(sql).fetchall()}


def disk_bytes(folder: Path) -> int:
    """Bytes under `folder` (the image cache); 0 when it does not exist yet."""
    total, stack = 0, [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


@dataclass(frozen=True, slots=True)
class Spend:
    """Money spent: every API call's dollars and every pod's."""

    api_usd: float
    pods_usd: float

    @property
    def total_usd(self) -> float:
        return self.api_usd + self.pods_usd


def spend(db: sqlite_utils.Database) -> Spend:
    api_usd = db.execute("SELECT coalesce(sum(usd), 0) FROM api_calls").fetchone()[0]
    pods_usd = db.execute("SELECT coalesce(sum(total_usd), 0) FROM pods").fetchone()[0]
    return Spend(float(api_usd), float(pods_usd))


def summarize(db: sqlite_utils.Database, image_dir: Path) -> dict:
    labels: dict[str, dict] = {}
    for source, split, label, count in db.execute(  # by who the labels are from: API labels by provider
        f"SELECT {origin_sql()} AS origin, split, label, count(*) FROM labels GROUP BY origin, split, label"
        " ORDER BY origin"
    ):
        entry = labels.setdefault(source, {"total": 0, "by_split": {}, "by_label": {}})
        entry["total"] += count
        entry["by_split"][split] = entry["by_split"].get(split, 0) + count
        entry["by_label"][label] = entry["by_label"].get(label, 0) + count
    money = spend(db)
    return {
        "database": db_path(db),
        "posts": db.execute("SELECT count(*) FROM posts").fetchone()[0],
        "candidates": db.execute(
            f"SELECT count(*) FROM posts p JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
        ).fetchone()[0],
        "unlabeled_candidates": db.execute(
            f"SELECT count(*) FROM posts p JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
            " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id)"
        ).fetchone()[0],
        "posts_by_source": _pairs(db, "SELECT source, count(*) FROM posts GROUP BY source ORDER BY source"),
        "images": _pairs(db, "SELECT status, count(*) FROM images GROUP BY status ORDER BY status"),
        "labels": labels,
        "skips": db.execute("SELECT count(*) FROM skips").fetchone()[0],
        "notes": db.execute("SELECT count(*) FROM notes").fetchone()[0],
        "disk_bytes": disk_bytes(image_dir),
        "spend_usd": round(money.total_usd, 6),
        "spend": {"api_usd": round(money.api_usd, 6), "pods_usd": round(money.pods_usd, 6)},
        "jobs": _pairs(db, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state"),
    }


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def render_summary(summary: dict) -> str:
    """A plain-text report (no colours, so it reads the same in logs, pipes and over SSH)."""
    lines = [
        f"database   {summary['database']}",
        f"posts      {summary['posts']} ({_counts(summary['posts_by_source'])}); "
        f"{summary['candidates']} labeling candidates, {summary['unlabeled_candidates']} without any label",
        f"images     {_counts(summary['images'])}; cache {_size(summary['disk_bytes'])}",
        f"human      {summary['skips']} skips, {summary['notes']} notes",
        "labels",
    ]
    if summary["labels"]:
        width = max(len(source) for source in summary["labels"])
        lines.append(f"  {'source':<{width}}  {'total':>6}  " + "  ".join(f"{label:>8}" for label in LABELS)
                     + "  splits")
        for source, entry in summary["labels"].items():
            by_label = "  ".join(f"{entry['by_label'].get(label, 0):>8}" for label in LABELS)
            lines.append(f"  {source:<{width}}  {entry['total']:>6}  {by_label}  {_counts(entry['by_split'])}")
    else:
        lines.append("  none yet")
    spend = summary["spend"]
    lines.append(f"spend      ${summary['spend_usd']:.2f} (API ${spend['api_usd']:.2f}, pods ${spend['pods_usd']:.2f})")
    lines.append(f"jobs       {_counts(summary['jobs'])}")
    return "\n".join(lines)
