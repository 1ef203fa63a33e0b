"""Reading the user's old scraper database (tables `thread_ops` and `training_labels`) into import rows.

Nothing is written here: the rows go to core.transfer, which writes them all or reports why not.

Rating scales. The old scraper stored `sentiment_rating` as 1 = bearish, 2 = neutral, 3 = bullish, but older
rows may use a 1-5 or 1-10 scale. Reading a 1-10 rating as 1-3 would silently turn most labels into garbage,
so with scale "auto" any rating above 3 stops the import and asks the user to name the scale:
  --scale 3:  1 bearish, 2 neutral, 3 bullish
  --scale 5:  1-2 bearish, 3 neutral, 4-5 bullish
  --scale 10: 1-4 bearish, 5-6 neutral, 7-10 bullish
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bizsent.core.collect.fields import blank, parse_bool, parse_int, parse_time
from bizsent.core.collect.html_text import clean_text
from bizsent.core.errors import ImportFormatError
from bizsent.core.labels import Label
from bizsent.core.store.records import ImageRef, ImportRow, NewLabel, NewPost

SCALES: dict[int, dict[int, Label]] = {
    3: {1: "bearish", 2: "neutral", 3: "bullish"},
    5: {1: "bearish", 2: "bearish", 3: "neutral", 4: "bullish", 5: "bullish"},
    10: {**dict.fromkeys(range(1, 5), "bearish"), 5: "neutral", 6: "neutral",
         **dict.fromkeys(range(7, 11), "bullish")},
}
DEFAULT_BOARD = "biz"


def open_readonly(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ImportFormatError(f"cannot read SQLite file {path} ({exc}); is it complete and not encrypted?") from None
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _rows(conn: sqlite3.Connection, table: str) -> list[dict]:
    return [dict(row) for row in conn.execute(f"SELECT rowid AS _rowid, * FROM {table} ORDER BY rowid")]


def resolve_scale(ratings: list[int], scale: str, path: Path) -> int:
    """The scale to read ratings with; under "auto", refuse anything that is not plainly 1-3."""
    if scale != "auto":
        if scale not in {"3", "5", "10"}:
            raise ImportFormatError(f"--scale {scale} is not a known rating scale; use auto, 3, 5 or 10")
        return int(scale)
    top = max(ratings, default=3)
    if top <= 3:
        return 3
    hint = "--scale 5 (1-2 bearish, 3 neutral, 4-5 bullish)" if top <= 5 else \
        "--scale 10 (1-4 bearish, 5-6 neutral, 7-10 bullish)"
    raise ImportFormatError(
        f"{path.name}: training_labels has ratings up to {top}, not the 1-3 scale; nothing was imported; "
        f"if they are on a 1-{5 if top <= 5 else 10} scale, rerun with {hint}"
    )


def _op_post(row: dict, where: str, problems: list[str]) -> NewPost:
    thread = parse_int(row.get("thread_id"), "thread_id")
    if thread is None:
        raise ValueError("thread_id is missing")
    markup = row.get("op_text") or ""
    text = row.get("op_text_clean") or ""
    if blank(text):
        text = clean_text(markup)
    try:
        time = parse_time(row.get("created_at"), "created_at")
    except ValueError as exc:
        problems.append(f"{where}: {exc}; imported without a time")
        time = None
    image = None
    if not blank(row.get("image_url")):
        # Archive mirrors (warosu and the like) outlive 4chan's CDN: keep the URL as it is; the image
        # pipeline fetches it later like any other pending image.
        image = ImageRef(
            url=row["image_url"].strip(),
            thumb_url=row.get("thumbnail_url") or None,
            md5=row.get("image_md5") or None,
            width=_maybe_int(row.get("image_width")),
            height=_maybe_int(row.get("image_height")),
        )
    return NewPost(
        board=(row.get("board") or DEFAULT_BOARD).strip().strip("/"),
        thread_no=thread, post_no=thread, is_op=True, time=time,
        subject=row.get("subject") or "", text=text.strip(), html=markup,
        source="archive" if (row.get("source") or "").strip().lower() == "warosu" else "import",
        image=image,
    )


def _maybe_int(value: object) -> int | None:
    try:
        return parse_int(value, "size")
    except ValueError:
        return None


def _snapshot_post(row: dict, thread: int) -> NewPost | None:
    """A post for a labeled thread that thread_ops lacks, from what the labeler saw."""
    text = row.get("text_snapshot") or ""
    url = row.get("image_url_snapshot") or ""
    if blank(text) and blank(url):
        return None
    return NewPost(
        board=DEFAULT_BOARD, thread_no=thread, post_no=thread, is_op=True, text=text.strip(), source="import",
        image=ImageRef(url=url.strip()) if not blank(url) else None,
    )


def read_scraper_db(path: Path, *, split: str, scale: str) -> tuple[list[ImportRow], list[str], int]:
    """Import rows, problem lines and the number of rows left out, from the old scraper database."""
    conn = open_readonly(path)
    try:
        tables = _tables(conn)
        if not {"thread_ops", "training_labels"} & tables:
            raise ImportFormatError(
                f"{path} is a SQLite database without thread_ops or training_labels tables; "
                "import reads the old scraper's database, JSONL or CSV"
            )
        ops = _rows(conn, "thread_ops") if "thread_ops" in tables else []
        labels = _rows(conn, "training_labels") if "training_labels" in tables else []
    finally:
        conn.close()

    problems: list[str] = []
    rows: list[ImportRow] = []
    bad = 0
    posts: dict[int, NewPost] = {}
    for row in ops:
        where = f"{path.name} thread_ops row {row['_rowid']}"
        try:
            post = _op_post(row, where, problems)
        except ValueError as exc:
            problems.append(f"{where}: {exc}; row skipped")
            bad += 1
            continue
        posts[post.thread_no] = post
        rows.append(ImportRow(where=where, post=post))

    ratings = []
    for row in labels:
        if not _is_skipped(row):
            try:
                value = parse_int(row.get("sentiment_rating"), "sentiment_rating")
            except ValueError:
                continue
            if value is not None and value >= 1:
                ratings.append(value)
    mapping = SCALES[resolve_scale(ratings, scale, path)]

    for row in labels:
        where = f"{path.name} training_labels row {row['_rowid']} (thread {row.get('thread_id')})"
        try:
            staged = _label_row(row, where, posts, mapping, split)
        except ValueError as exc:
            problems.append(f"{where}: {exc}; row skipped")
            bad += 1
            continue
        rows.append(staged)
    return rows, problems, bad


def _is_skipped(row: dict) -> bool:
    try:
        return parse_bool(row.get("skipped"), "skipped")
    except ValueError:
        return False


def _label_row(row: dict, where: str, posts: dict[int, NewPost], mapping: dict[int, Label],
               split: str) -> ImportRow:
    thread = parse_int(row.get("thread_id"), "thread_id")
    if thread is None:
        raise ValueError("thread_id is missing")
    post = posts.get(thread) or _snapshot_post(row, thread)
    if post is None:
        raise ValueError("thread not in thread_ops and no text_snapshot or image_url_snapshot to rebuild it")
    note = None if blank(row.get("notes")) else str(row["notes"]).strip()
    labeler = f"human:{row['labeler_id']}" if not blank(row.get("labeler_id")) else "human:import"
    if parse_bool(row.get("skipped"), "skipped"):
        return ImportRow(where=where, post=post, skip_reason=note or "skipped in the old scraper")
    rating = parse_int(row.get("sentiment_rating"), "sentiment_rating")
    if rating not in mapping:
        raise ValueError(f"sentiment_rating {row.get('sentiment_rating')!r} is not on the 1-{max(mapping)} scale")
    label = NewLabel(label=mapping[rating], source="human", split=split, labeler=labeler)
    return ImportRow(where=where, post=post, label=label, note=note)
