"""Writing and reading posts, their images and their labels."""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils
from bizsent.core.labels import API_SOURCE
from bizsent.core.store import now, transaction
from bizsent.core.store.history import LabelValue, actor
from bizsent.core.store.image_text import squash
from bizsent.core.store.records import ImageRef, NewLabel, NewPost, SaveCounts

# A post the model may ever see: image bytes on disk and some text (never text alone, never image alone).
CANDIDATE_SQL = "p.image_id IS NOT NULL AND i.status = 'ok' AND trim(p.text) != ''"
# The pool: candidates the human has not labelled or skipped (API labels do not take a post out). Pool scoring,
# the active-learning queue and the Label screen all use this one definition.
POOL_SQL = (
    f"{CANDIDATE_SQL}"
    " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id AND l.source = 'human')"
    " AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.post_id = p.id AND s.source = 'human')"
)


def human_test(alias: str = "") -> str:
    """The human test set: the condition on a `labels` row (as `alias`, when the query names the table) that
    every evaluation, agreement figure and labeling rule means by "the human test labels"."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}source = 'human' AND {prefix}split = 'test'"


HUMAN_TEST = human_test()

# Two API labels of post `p` that differ. Rows are unique per (post, source, labeler), so two different labels
# are always two different labelers; `<` looks at each pair once.
DISAGREE_SQL = (
    "EXISTS (SELECT 1 FROM labels a JOIN labels b ON b.post_id = a.post_id AND b.label > a.label"
    f" WHERE a.post_id = p.id AND a.source = '{API_SOURCE}' AND b.source = '{API_SOURCE}')"
)
# Post `p`'s text or subject, or the words read on its image (compared without spaces: core.store.image_text.squash),
# contain the search text; its arguments come from `text_match`.
TEXT_MATCH_SQL = ("(p.text LIKE ? ESCAPE '\\' OR p.subject LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM image_text t"
                  " WHERE t.image_id = p.image_id AND t.squashed LIKE ? ESCAPE '\\'))")


def text_match(text: str) -> tuple[str, list[object]]:
    """The condition (on posts `p`) and its arguments for a search for `text` in a post's words or image."""
    return TEXT_MATCH_SQL, [like(text), like(text), like(squash(text))]


def like(text: str) -> str:
    """The LIKE pattern for `text` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _image_id(db: sqlite_utils.Database, ref: ImageRef) -> int:
    row = db.execute("SELECT id FROM images WHERE url = ?", [ref.url]).fetchone()
    if row:
        return row[0]
    cur = db.execute(
        "INSERT INTO images (url, thumb_url, md5, width, height, path, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [ref.url, ref.thumb_url, ref.md5, ref.width, ref.height, ref.local_path, "pending"],
    )
    return cur.lastrowid


def save_posts(db: sqlite_utils.Database, posts: Iterable[NewPost]) -> SaveCounts:
    """Insert new posts (and their image rows); refresh text of known ones. One transaction."""
    with transaction(db):
        return write_posts(db, posts)


def write_posts(db: sqlite_utils.Database, posts: Iterable[NewPost]) -> SaveCounts:
    """save_posts inside a transaction the caller holds (an import writes posts and labels as one)."""
    counts = SaveCounts()
    stamp = now()
    for post in posts:
        image_id = _image_id(db, post.image) if post.image else None
        row = db.execute(
            "SELECT id, html, image_id FROM posts WHERE board = ? AND post_no = ?", [post.board, post.post_no]
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO posts (board, thread_no, post_no, is_op, time, subject, text, html, image_id,"
                " source, scraped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [post.board, post.thread_no, post.post_no, int(post.is_op), post.time, post.subject,
                 post.text, post.html, image_id, post.source, stamp],
            )
            counts.new += 1
        elif row[1] != post.html or (image_id is not None and row[2] != image_id):
            db.execute(
                "UPDATE posts SET subject = ?, text = ?, html = ?, image_id = coalesce(?, image_id) WHERE id = ?",
                [post.subject, post.text, post.html, image_id, row[0]],
            )
            counts.updated += 1
        else:
            counts.unchanged += 1
    return counts


def post_id(db: sqlite_utils.Database, board: str, post_no: int) -> int | None:
    row = db.execute("SELECT id FROM posts WHERE board = ? AND post_no = ?", [board, post_no]).fetchone()
    return row[0] if row else None


def set_label(db: sqlite_utils.Database, post: int, label: NewLabel, changed_by: str | None = None) -> int:
    """Write (or replace) the label of `post` from this source and labeler; return the label row id.

    `changed_by` names the writer in the label's history (default: core.history.actor()); the value a write
    replaces is kept there by the store's triggers.
    """
    # A rewrite that does not say how its post was chosen (a correction) keeps the recorded sampling.
    cur = db.execute(
        "INSERT INTO labels (post_id, label, source, labeler, confidence, sarcastic, unsure, rationale, split,"
        " created_at, changed_by, sampling) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (post_id, source, labeler) DO UPDATE SET label = excluded.label,"
        " confidence = excluded.confidence, sarcastic = excluded.sarcastic, unsure = excluded.unsure,"
        " rationale = excluded.rationale, split = excluded.split, created_at = excluded.created_at,"
        " changed_by = excluded.changed_by, sampling = coalesce(excluded.sampling, labels.sampling)"
        " RETURNING id",
        [post, label.label, label.source, label.labeler, label.confidence, int(label.sarcastic),
         int(label.unsure), label.rationale, label.split, now(), changed_by or actor(), label.sampling],
    )
    return cur.fetchone()[0]


def current_label(db: sqlite_utils.Database, post: int, source: str, labeler: str) -> LabelValue | None:
    """The label `set_label` would replace (None if it would add one): what an undo puts back."""
    row = db.execute(
        "SELECT label, split, sarcastic, unsure, confidence FROM labels WHERE post_id = ? AND source = ?"
        " AND labeler = ?", [post, source, labeler]).fetchone()
    return None if row is None else LabelValue(row[0], row[1], bool(row[2]), bool(row[3]), row[4])


def restore_label(db: sqlite_utils.Database, label_id: int, previous: LabelValue | None,
                  changed_by: str | None = None) -> None:
    """Undo a write to label row `label_id`: put `previous` back, or delete the row if it had none."""
    if previous is None:
        delete_label(db, label_id, changed_by)
        return
    db.execute(
        "UPDATE labels SET label = ?, split = ?, sarcastic = ?, unsure = ?, confidence = ?, changed_by = ?,"
        " created_at = ? WHERE id = ?",
        [previous.label, previous.split, int(previous.sarcastic), int(previous.unsure), previous.confidence,
         changed_by or actor(), now(), label_id],
    )


def delete_label(db: sqlite_utils.Database, label_id: int, changed_by: str | None = None) -> None:
    # Stamp the deleter first (the history trigger ignores a changed_by-only update), so the history's delete
    # row says who deleted it; who wrote the deleted value is in the row before it.
    db.execute("UPDATE labels SET changed_by = ? WHERE id = ?", [changed_by or actor(), label_id])
    db.execute("DELETE FROM labels WHERE id = ?", [label_id])


def add_note(db: sqlite_utils.Database, post: int, text: str) -> int:
    return db.execute(
        "INSERT INTO notes (post_id, text, created_at) VALUES (?, ?, ?)", [post, text, now()]
    ).lastrowid


def add_skip(db: sqlite_utils.Database, post: int, reason: str = "", source: str = "human") -> None:
    db.execute(
        "INSERT INTO skips (post_id, source, reason, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (post_id, source) DO UPDATE SET reason = excluded.reason",
        [post, source, reason, now()],
    )


def delete_skip(db: sqlite_utils.Database, post: int, source: str = "human") -> None:
    db.execute("DELETE FROM skips WHERE post_id = ? AND source = ?", [post, source])
