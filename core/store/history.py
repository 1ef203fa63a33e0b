"""Who changed a label, and what it was before.

The store's triggers (migration 5) write a `label_history` row for every insert, real change and delete of a
label, whoever makes it; this module names the writer (`actor`) and reads a post's history back.
"""

from __future__ import annotations

import getpass
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils


def actor(what: str = "") -> str:
    """`user via what`: the OS user and what wrote the label (a console screen, else the command that ran)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers): the command still says what did it
        user = "unknown"
    return f"{user} via {what or _command()}"


def _command() -> str:
    # `bizsent import`, `bizsent label`: the program and its subcommand (the first bare word, so the value of
    # `--db x.db` is stepped over), never its other arguments (paths, text).
    words = [Path(sys.argv[0]).name] if sys.argv and sys.argv[0] else ["python"]
    words += [a for a in sys.argv[1:] if re.fullmatch(r"[a-z][a-z-]*", a)][:1]
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class LabelValue:
    label: str
    split: str
    sarcastic: bool
    unsure: bool
    confidence: float | None


@dataclass(frozen=True, slots=True)
class LabelChange:
    """One write to one label row: `old` is None for an insert, `new` is None for a delete."""

    label_id: int
    post_id: int
    source: str
    labeler: str
    change: str  # insert | update | delete
    old: LabelValue | None
    new: LabelValue | None
    changed_at: str
    changed_by: str


def _value(label: str | None, split: str, sarcastic: int, unsure: int, confidence: float | None) -> LabelValue | None:
    return None if label is None else LabelValue(label, split, bool(sarcastic), bool(unsure), confidence)


def label_history(db: sqlite_utils.Database, post: int, source: str | None = None) -> list[LabelChange]:
    """Every recorded write to `post`'s labels (only `source`'s if given), oldest first."""
    where, params = "post_id = ?", [post]
    if source is not None:
        where, params = where + " AND source = ?", [post, source]
    rows = db.execute(
        "SELECT label_id, post_id, source, labeler, change, old_label, old_split, old_sarcastic, old_unsure,"
        " old_confidence, new_label, new_split, new_sarcastic, new_unsure, new_confidence, changed_at, changed_by"
        f" FROM label_history WHERE {where} ORDER BY id",
        params,
    ).fetchall()
    return [LabelChange(r[0], r[1], r[2], r[3], r[4], _value(*r[5:10]), _value(*r[10:15]), r[15], r[16])
            for r in rows]
