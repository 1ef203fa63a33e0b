"""Browsing the store: the posts matching a filter, their list rows, one post's full detail.

The console's Posts screen asks these in worker threads, each on a connection of its own (core.store.reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils
from bizsent.core.labels import origin_sql
from bizsent.core.store.history import LabelChange, label_history
from bizsent.core.store.posts import DISAGREE_SQL, text_match

IMAGE_STATES = ("ok", "pending", "corrupt", "missing", "unsupported", "none")
DISAGREE = "disagree"  # the label filter value: API labelers gave this post different labels
UNLABELED = "unlabeled"  # the label filter value: no label row matches the other conditions


@dataclass(frozen=True, slots=True)
class PostFilter:
    """Which posts to list. Label, source and split all constrain the same label row."""

    label: str | None = None  # bearish | neutral | bullish | UNLABELED | DISAGREE
    source: str | None = None  # label source: human | openai | ...
    split: str | None = None
    image: str | None = None  # one of IMAGE_STATES
    text: str = ""


@dataclass(frozen=True, slots=True)
class LabelMark:
    source: str
    label: str


@dataclass(frozen=True, slots=True)
class PostRow:
    """One line of a post list."""

    id: int
    time: int | None
    image: str
    preview: str
    labels: tuple[LabelMark, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelInfo:
    source: str
    labeler: str
    label: str
    confidence: float | None
    sarcastic: bool
    unsure: bool
    split: str


@dataclass(frozen=True, slots=True)
class PostDetail:
    id: int
    board: str
    post_no: int
    thread_no: int
    time: int | None
    source: str
    subject: str
    text: str
    image_status: str
    image_reason: str
    image_path: str | None  # thumbnail when there is one, else the original
    labels: tuple[LabelInfo, ...] = ()
    notes: tuple[str, ...] = ()
    earlier: tuple[LabelChange, ...] = ()  # changes and deletes of its human label, oldest first
    image_text: str | None = None  # the words read on its image (None: not read)


def _filter_sql(f: PostFilter) -> tuple[str, list[object]]:
    where: list[str] = []
    args: list[object] = []
    label_conds: list[str] = []
    label_args: list[object] = []
    if f.source:
        label_conds.append(f"{origin_sql('l')} = ?")
        label_args.append(f.source)
    if f.split:
        label_conds.append("l.split = ?")
        label_args.append(f.split)
    if f.label and f.label not in (UNLABELED, DISAGREE):
        label_conds.append("l.label = ?")
        label_args.append(f.label)
    inner = " AND ".join(["l.post_id = p.id", *label_conds])
    if f.label == UNLABELED:
        where.append(f"NOT EXISTS (SELECT 1 FROM labels l WHERE {inner})")
        args += label_args
    elif label_conds:
        where.append(f"EXISTS (SELECT 1 FROM labels l WHERE {inner})")
        args += label_args
    if f.label == DISAGREE:
        where.append(DISAGREE_SQL)
    if f.image == "none":
        where.append("p.image_id IS NULL")
    elif f.image:
        where.append("i.status = ?")
        args.append(f.image)
    if f.text.strip():
        condition, more = text_match(f.text.strip())
        where.append(condition)
        args += more
    return (" WHERE " + " AND ".join(where)) if where else "", args


def post_ids(db: sqlite_utils.Database, f: PostFilter) -> list[int]:
    """Ids of the posts matching `f`, newest first. Only ids: rows are fetched when they scroll into view."""
    where, args = _filter_sql(f)
    sql = f"SELECT p.id FROM posts p LEFT JOIN images i ON i.id = p.image_id{where} ORDER BY p.time DESC, p.id DESC"
    return [row[0] for row in db.execute(sql, args)]


def post_rows(db: sqlite_utils.Database, ids: Sequence[int]) -> dict[int, PostRow]:
    """The list rows for `ids` (any order), in two queries whatever the number of ids."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    labels: dict[int, list[LabelMark]] = {}
    for pid, source, label in db.execute(
        f"SELECT post_id, {origin_sql()} AS origin, label FROM labels WHERE post_id IN ({marks})"
        " ORDER BY origin, labeler", list(ids)
    ):
        labels.setdefault(pid, []).append(LabelMark(source, label))
    rows = {}
    for pid, stamp, status, subject, text in db.execute(
        f"SELECT p.id, p.time, coalesce(i.status, 'none'), p.subject, substr(p.text, 1, 200)"
        f" FROM posts p LEFT JOIN images i ON i.id = p.image_id WHERE p.id IN ({marks})",
        list(ids),
    ):
        # Many OPs repeat the subject as the first line of the text: show it once.
        head = subject if subject and not text.startswith(subject) else ""
        preview = " ".join(f"{head} {text}".split())
        rows[pid] = PostRow(pid, stamp, status, preview, tuple(labels.get(pid, ())))
    return rows


def post_detail(db: sqlite_utils.Database, pid: int) -> PostDetail | None:
    row = db.execute(
        "SELECT p.id, p.board, p.post_no, p.thread_no, p.time, p.source, p.subject, p.text,"
        " coalesce(i.status, 'none'), coalesce(i.reason, ''), coalesce(i.thumb_path, i.path), t.text"
        " FROM posts p LEFT JOIN images i ON i.id = p.image_id LEFT JOIN image_text t ON t.image_id = p.image_id"
        " WHERE p.id = ?",
        [pid],
    ).fetchone()
    if row is None:
        return None
    labels = tuple(
        LabelInfo(source, labeler, label, confidence, bool(sarcastic), bool(unsure), split)
        for source, labeler, label, confidence, sarcastic, unsure, split in db.execute(
            "SELECT source, labeler, label, confidence, sarcastic, unsure, split FROM labels"
            " WHERE post_id = ? ORDER BY source, labeler",
            [pid],
        )
    )
    notes = tuple(r[0] for r in db.execute("SELECT text FROM notes WHERE post_id = ? ORDER BY id", [pid]))
    earlier = tuple(c for c in label_history(db, pid, "human") if c.change != "insert")
    return PostDetail(*row[:-1], labels=labels, notes=notes, earlier=earlier, image_text=row[-1])


def label_sources(db: sqlite_utils.Database) -> list[str]:
    """Who the store's labels are from (core.labels.origin: providers by name)."""
    return [r[0] for r in db.execute(f"SELECT DISTINCT {origin_sql()} AS origin FROM labels ORDER BY origin")]
