"""The console's labeling session, kept in the store so closing the console (or a crash) loses nothing.

A session is what the Label screen counts and how it picks posts: the answers so far by class, the goal, the
split answers go to, the queue order and filter. The labels themselves are in `labels` the moment they are
given; this is the part that used to live only in the screen.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import sqlite_utils
from bizsent.core.store import now

LABEL_SESSION = "label_session"


@dataclass(frozen=True, slots=True)
class LabelSession:
    started_at: str
    split: str = "test"
    order: str = "random"
    disagree_first: bool = False
    filter_text: str = ""
    goal: int = 50
    counts: dict[str, int] = field(default_factory=dict)  # bearish/neutral/bullish/skip answered this session
    pinned: int | None = None  # a post opened from Posts and not answered yet


def new_label_session() -> LabelSession:
    return LabelSession(started_at=now())


def load_label_session(db: sqlite_utils.Database) -> LabelSession | None:
    """The saved session, or None if there is none (a new database, or one saved by an unknown version)."""
    value = get_state(db, LABEL_SESSION)
    if value is None:
        return None
    known = {f.name for f in fields(LabelSession)}
    try:
        return LabelSession(**{k: v for k, v in value.items() if k in known})
    except TypeError:  # started_at missing: not a session this code wrote
        return None


def save_label_session(db: sqlite_utils.Database, session: LabelSession) -> None:
    put_state(db, LABEL_SESSION, asdict(session))


def get_state(db: sqlite_utils.Database, key: str) -> dict[str, Any] | None:
    row = db.execute("SELECT value FROM app_state WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else None


def put_state(db: sqlite_utils.Database, key: str, value: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO app_state (key, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        [key, json.dumps(value), now()],
    )
