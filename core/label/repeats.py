"""Seeing your own labeling: the session's answers (the last ones, the pace) and its blind repeats.

Annotators drift into autopilot on long sessions. Every `labeling.repeat_every` answers the Label screen shows
again, blind, a post answered earlier in the session; the answer is recorded in `label_repeats` next to the
label stored at that moment and never changes the label. Self-agreement is Cohen's kappa between the two, per
session (a session is named by its start time, core.store.sessions); disagreements are listed for review
(`bizsent label-review`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlite_utils
from bizsent.core.store import now

MIN_GAP = 5  # answers between a post and its repeat, so the first answer is not simply remembered


@dataclass(frozen=True, slots=True)
class SessionAnswer:
    """A post this session labelled, with its current human label."""

    post_id: int
    label: str
    sarcastic: bool
    unsure: bool
    split: str
    at: str  # when this session last answered it (ISO time)


@dataclass(frozen=True, slots=True)
class Pace:
    answers: int
    per_hour: float
    seconds_per_post: float

    def line(self) -> str:
        if self.answers < 2:
            return "pace after 2 answers"
        return f"{self.per_hour:.0f}/h · {self.seconds_per_post:.0f} s/post"


@dataclass(frozen=True, slots=True)
class Repeat:
    post_id: int
    session: str
    stored_label: str
    label: str
    answered_at: str


def session_answers(db: sqlite_utils.Database, started_at: str, changed_by: str) -> list[SessionAnswer]:
    """The posts labelled by `changed_by` since `started_at` whose human label still stands, newest first."""
    rows = db.execute(
        "SELECT h.post_id, l.label, l.sarcastic, l.unsure, l.split, max(h.changed_at), max(h.id) AS last"
        " FROM label_history h JOIN labels l ON l.id = h.label_id"
        " WHERE h.source = 'human' AND h.change != 'delete' AND h.changed_by = ? AND h.changed_at >= ?"
        " GROUP BY h.post_id ORDER BY last DESC", [changed_by, started_at]).fetchall()
    return [SessionAnswer(r[0], r[1], bool(r[2]), bool(r[3]), r[4], r[5]) for r in rows]


def pace(answers: list[SessionAnswer]) -> Pace:
    """Labels per hour and seconds per post, from the first answer of the session to the last."""
    times = sorted(datetime.fromisoformat(a.at) for a in answers)
    if len(times) < 2:
        return Pace(len(times), 0.0, 0.0)
    seconds = max((times[-1] - times[0]).total_seconds(), 1.0)
    per_post = seconds / (len(times) - 1)
    return Pace(len(times), 3600 / per_post, per_post)


def repeat_due(answered: int, every: int) -> bool:
    """Is the next post a repeat? After every `every` answers of the session (0: never)."""
    return every > 0 and answered > 0 and answered % every == 0


def pick_repeat(answered: list[int], repeated: set[int]) -> int | None:
    """The post to show again: the oldest of the session's answers (oldest first in `answered`) not repeated
    yet and at least MIN_GAP answers back."""
    for pid in answered[:max(len(answered) - MIN_GAP, 0)]:
        if pid not in repeated:
            return pid
    return None


def record_repeat(db: sqlite_utils.Database, session: str, post: int, label: str, sarcastic: bool, unsure: bool,
                  answered_by: str) -> int | None:
    """Record a blind repeat's answer beside the post's stored human label; the label itself is never touched.
    Returns the row id (None: the post has no human label any more, so there is nothing to agree with)."""
    row = db.execute("SELECT label FROM labels WHERE post_id = ? AND source = 'human' ORDER BY labeler != 'human',"
                     " id LIMIT 1", [post]).fetchone()
    if row is None:
        return None
    return db.execute(
        "INSERT INTO label_repeats (session, post_id, stored_label, label, sarcastic, unsure, answered_at,"
        " answered_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [session, post, row[0], label, int(sarcastic), int(unsure), now(), answered_by]).lastrowid


def delete_repeat(db: sqlite_utils.Database, repeat_id: int | None) -> None:
    """Take a repeat's answer back (undo)."""
    if repeat_id is not None:
        db.execute("DELETE FROM label_repeats WHERE id = ?", [repeat_id])


def repeats(db: sqlite_utils.Database, session: str | None = None) -> list[Repeat]:
    """The repeats of one session (None: every session), oldest first."""
    sql = "SELECT post_id, session, stored_label, label, answered_at FROM label_repeats"
    rows = db.execute(sql + (" WHERE session = ? ORDER BY id" if session else " ORDER BY id"),
                      [session] if session else []).fetchall()
    return [Repeat(*row) for row in rows]


def self_agreement(found: list[Repeat]) -> tuple[int, float] | None:
    """(repeats, Cohen's kappa between the stored label and the repeat's answer), None without repeats."""
    if not found:
        return None
    from bizsent.core.label.agreement import scores  # numpy: loaded only once there is something to score

    return len(found), scores([(r.stored_label, r.label) for r in found]).kappa


def agreement_line(found: list[Repeat]) -> str:
    result = self_agreement(found)
    if result is None:
        return "κ: no repeat yet"
    n, kappa = result
    misses = sum(r.stored_label != r.label for r in found)
    return f"κ {kappa:.2f} ({n} rep, {misses} differ)"


def review_lines(db: sqlite_utils.Database, session: str | None = None) -> list[str]:
    """`bizsent label-review`: per session its self-agreement, then each repeat that disagreed with the label."""
    found = repeats(db, session)
    if not found:
        return ["no blind repeats yet: the Label screen shows one every labeling.repeat_every answers"]
    lines = []
    for name in dict.fromkeys(r.session for r in found):
        mine = [r for r in found if r.session == name]
        lines.append(f"session {name}: self-agreement {agreement_line(mine)}")
        lines += [f"  post {r.post_id}: stored {r.stored_label}, repeat said {r.label} ({r.answered_at})"
                  for r in mine if r.stored_label != r.label]
    return lines
