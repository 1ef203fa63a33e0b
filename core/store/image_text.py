"""The words read on each image (table image_text, migration 15): which images still need reading, saving
what was read, and reading it back for a post."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlite_utils
from bizsent.core.store import now


def unread_images(db: sqlite_utils.Database, engine: str, limit: int | None = None) -> list[tuple[int, str]]:
    """(image id, path) of fetched images not read yet by `engine`, oldest first (the order they arrived)."""
    sql = ("SELECT i.id, i.path FROM images i LEFT JOIN image_text t ON t.image_id = i.id"
           " WHERE i.status = 'ok' AND i.path IS NOT NULL AND (t.image_id IS NULL OR t.engine != ?) ORDER BY i.id")
    rows = db.execute(sql + (" LIMIT ?" if limit else ""), [engine, limit] if limit else [engine]).fetchall()
    return [(row[0], row[1]) for row in rows]


def save_image_text(db: sqlite_utils.Database, image_id: int, text: str, engine: str) -> None:
    db.execute("INSERT INTO image_text (image_id, text, squashed, engine, read_at) VALUES (?, ?, ?, ?, ?)"
               " ON CONFLICT (image_id) DO UPDATE SET text = excluded.text, squashed = excluded.squashed,"
               " engine = excluded.engine, read_at = excluded.read_at",
               [image_id, text, squash(text), engine, now()])


def post_image_text(db: sqlite_utils.Database, post: int) -> str | None:
    """The text read on the post's image ('' when none was found), or None when it has not been read."""
    row = db.execute("SELECT t.text FROM posts p JOIN image_text t ON t.image_id = p.image_id WHERE p.id = ?",
                     [post]).fetchone()
    return row[0] if row else None


@dataclass(frozen=True, slots=True)
class ZoomSource:
    """A post's full-size image (the original, not the thumbnail) and the words read on it."""

    post_id: int
    path: str | None
    status: str  # the image's status, 'none' when the post has no image
    reason: str
    text: str | None  # None: not read yet


def zoom_source(db: sqlite_utils.Database, post: int) -> ZoomSource | None:
    row = db.execute(
        "SELECT p.id, coalesce(i.path, i.thumb_path), coalesce(i.status, 'none'), coalesce(i.reason, ''), t.text"
        " FROM posts p LEFT JOIN images i ON i.id = p.image_id LEFT JOIN image_text t ON t.image_id = p.image_id"
        " WHERE p.id = ?", [post]).fetchone()
    return ZoomSource(*row) if row else None


def squash(text: str) -> str:
    """`text` lowercased with all whitespace removed: how image text and a search for it are compared."""
    return re.sub(r"\s+", "", text).lower()
