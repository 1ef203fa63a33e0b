"""Read-only SQL behind the console's screens.

Every function here runs in a worker thread on a connection of its own (`reading`), never on the event
loop: WAL lets these readers run while jobs and the console's writer thread write.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from bizsent.core.labels import API_SOURCES, LABELS
from bizsent.core.store import open_db
from bizsent.core.store.history import LabelChange, label_history
from bizsent.core.store.posts import POOL_SQL

IMAGE_STATES = ("ok", "pending", "corrupt", "missing", "unsupported", "none")
QUEUE_ORDERS = ("random", "newest", "filter", "active")
DISAGREE = "disagree"  # the label filter value: API labelers gave this post different labels
NO_PREDICTIONS = "no model has scored the pool yet: press `p` (or run `bizsent score-pool`), then `o` again"

# Two API labels of one post that differ. Rows are unique per (post, source, labeler), so two different labels
# are always two different labelers; `<` looks at each pair once.
DISAGREE_SQL = (
    "EXISTS (SELECT 1 FROM labels a JOIN labels b ON b.post_id = a.post_id AND b.label > a.label"
    f" WHERE a.post_id = p.id AND a.source IN {API_SOURCES!r} AND b.source IN {API_SOURCES!r})"
)


@contextmanager
def reading(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A short-lived connection for one worker run (sqlite3 connections must not hop threads casually)."""
    db = open_db(db_path, create=False)
    try:
        yield db
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class PostFilter:
    """What the Posts list shows. Label, source and split all constrain the same label row."""

    label: str | None = None  # bearish | neutral | bullish | "unlabeled" | DISAGREE
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
    """One line of the Posts list."""

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


@dataclass(frozen=True, slots=True)
class StatusInfo:
    db_path: str
    running_jobs: int = 0
    spend_usd: float = 0.0
    error: str = ""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Which posts a labeling session walks through, and in what order."""

    order: str = "random"  # one of QUEUE_ORDERS
    disagree_first: bool = False  # posts whose API labelers disagree first, then the rest in `order`
    seed: int = 0
    text: str = ""
    label_source: str | None = None  # with label: posts that this source labelled `label`
    label: str | None = None
    exclude: frozenset[int] = field(default_factory=frozenset)


def format_time(stamp: int | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%y-%m-%d %H:%M")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter_sql(f: PostFilter) -> tuple[str, list[object]]:
    where: list[str] = []
    args: list[object] = []
    label_conds: list[str] = []
    label_args: list[object] = []
    if f.source:
        label_conds.append("l.source = ?")
        label_args.append(f.source)
    if f.split:
        label_conds.append("l.split = ?")
        label_args.append(f.split)
    if f.label and f.label not in ("unlabeled", DISAGREE):
        label_conds.append("l.label = ?")
        label_args.append(f.label)
    inner = " AND ".join(["l.post_id = p.id", *label_conds])
    if f.label == "unlabeled":
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
        where.append("(p.text LIKE ? ESCAPE '\\' OR p.subject LIKE ? ESCAPE '\\')")
        args += [_like(f.text.strip())] * 2
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
        f"SELECT post_id, source, label FROM labels WHERE post_id IN ({marks}) ORDER BY source, labeler", list(ids)
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
        " coalesce(i.status, 'none'), coalesce(i.reason, ''), coalesce(i.thumb_path, i.path)"
        " FROM posts p LEFT JOIN images i ON i.id = p.image_id WHERE p.id = ?",
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
    return PostDetail(*row, labels=labels, notes=notes, earlier=earlier)


def label_sources(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT source FROM labels ORDER BY source")]


def status_info(db: sqlite_utils.Database, db_path: Path) -> StatusInfo:
    from bizsent.jobs.views import running_count

    running = running_count(db)  # a dead job's row still says 'running': the engine's rule decides
    spend = db.execute(
        "SELECT (SELECT coalesce(sum(usd), 0) FROM api_calls) + (SELECT coalesce(sum(total_usd), 0) FROM pods)"
    ).fetchone()[0]
    return StatusInfo(str(db_path), running, float(spend))


_SOURCE_LABEL = re.compile(r"^(\w[\w-]*):(" + "|".join(LABELS) + r")$")


def parse_queue_filter(text: str) -> tuple[str | None, str | None, str]:
    """'openai:bullish moon' -> ('openai', 'bullish', 'moon'): a label of a source, then free search text."""
    source = label = None
    words = []
    for word in text.split():
        match = _SOURCE_LABEL.match(word.lower())
        if match and label is None:
            source, label = match.group(1), match.group(2)
        else:
            words.append(word)
    return source, label, " ".join(words)


def label_queue(db: sqlite_utils.Database, spec: QueueSpec) -> list[int]:
    """The pool (core.pool: candidates with no human label or skip) in the session's order; `active` is the
    engine's active-learning queue (the one `bizsent queue` prints), random when no run has scored the pool."""
    where = [POOL_SQL]
    args: list[object] = []
    if spec.order == "filter":
        if spec.label:
            where.append("EXISTS (SELECT 1 FROM labels f WHERE f.post_id = p.id AND f.label = ?"
                         + (" AND f.source = ?)" if spec.label_source else ")"))
            args += [spec.label] + ([spec.label_source] if spec.label_source else [])
        if spec.text.strip():
            where.append("(p.text LIKE ? ESCAPE '\\' OR p.subject LIKE ? ESCAPE '\\')")
            args += [_like(spec.text.strip())] * 2
    order = "p.time DESC, p.id DESC" if spec.order in ("newest", "filter") else "p.id"
    sql = f"SELECT p.id FROM posts p JOIN images i ON i.id = p.image_id WHERE {' AND '.join(where)} ORDER BY {order}"
    ids = [r[0] for r in db.execute(sql, args) if r[0] not in spec.exclude]
    from bizsent.core.model.acquisition import (
        human_queue,  # numpy and the scoring types: only for the active-learning order
    )

    active = human_queue(db) if spec.order == "active" else None
    if active is not None and active.run_id is not None:
        ids = [pid for pid in active.ids if pid not in spec.exclude]
    elif spec.order in ("random", "active"):  # active learning before any run scored the pool: random
        random.Random(spec.seed).shuffle(ids)
    if spec.disagree_first:
        disagreeing = disagreeing_posts(db)
        ids = [pid for pid in ids if pid in disagreeing] + [pid for pid in ids if pid not in disagreeing]
    return ids


def disagreeing_posts(db: sqlite_utils.Database) -> set[int]:
    """Posts to which two API labelers gave different labels."""
    return {r[0] for r in db.execute(f"SELECT p.id FROM posts p WHERE {DISAGREE_SQL}")}


@dataclass(frozen=True, slots=True)
class LabelPost:
    """What the Label screen shows of a post: text and image only, never its other labels."""

    id: int
    subject: str
    text: str
    time: int | None
    image_path: str | None


def label_posts(db: sqlite_utils.Database, ids: Sequence[int]) -> list[LabelPost]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = {
        r[0]: LabelPost(*r)
        for r in db.execute(
            f"SELECT p.id, p.subject, p.text, p.time, coalesce(i.path, i.thumb_path) FROM posts p"
            f" LEFT JOIN images i ON i.id = p.image_id WHERE p.id IN ({marks})",
            list(ids),
        )
    }
    return [rows[i] for i in ids if i in rows]
