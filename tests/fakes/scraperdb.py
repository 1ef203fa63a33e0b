"""Build a database shaped like the user's old scraper's (thread_ops, training_labels) for import tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

THREAD_OPS = """
CREATE TABLE thread_ops (
    thread_id INTEGER PRIMARY KEY, board TEXT, subject TEXT, op_text TEXT, op_text_clean TEXT,
    image_url TEXT, thumbnail_url TEXT, local_thumbnail_path TEXT, image_md5 TEXT, image_width INTEGER,
    image_height INTEGER, created_at TEXT, reply_count INTEGER, source TEXT, source_url TEXT, last_seen TEXT
)"""
TRAINING_LABELS = """
CREATE TABLE training_labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id INTEGER, sentiment_rating INTEGER, skipped INTEGER DEFAULT 0,
    notes TEXT, labeler_id TEXT, labeled_at TEXT, text_snapshot TEXT, image_url_snapshot TEXT,
    UNIQUE (thread_id, labeler_id)
)"""


def op(thread_id: int, **fields) -> dict:
    row = {
        "thread_id": thread_id, "board": "biz", "subject": "", "op_text": f"post {thread_id}<br>&gt;greentext",
        "op_text_clean": f"post {thread_id}\n>greentext", "image_url": f"https://i.4cdn.org/biz/{thread_id}.jpg",
        "thumbnail_url": f"https://i.4cdn.org/biz/{thread_id}s.jpg", "image_md5": "abc==", "image_width": 800,
        "image_height": 600, "created_at": "2024-03-01 12:00:00", "reply_count": 3, "source": "live",
        "source_url": f"https://boards.4chan.org/biz/thread/{thread_id}",
    }
    row.update(fields)
    return row


def label(thread_id: int, rating: int | None, **fields) -> dict:
    row = {"thread_id": thread_id, "sentiment_rating": rating, "skipped": 0, "notes": None, "labeler_id": "me",
           "labeled_at": "2024-03-02T10:00:00"}
    row.update(fields)
    return row


def make_scraper_db(path: Path, ops: list[dict] | None, labels: list[dict] | None) -> Path:
    """A SQLite file with thread_ops (when `ops` is not None) and training_labels (when `labels` is not None)."""
    conn = sqlite3.connect(path)
    with conn:
        if ops is not None:
            conn.execute(THREAD_OPS)
            for row in ops:
                conn.execute(f"INSERT INTO thread_ops ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
        if labels is not None:
            conn.execute(TRAINING_LABELS)
            for row in labels:
                conn.execute(
                    f"INSERT INTO training_labels ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
    conn.close()
    return path
