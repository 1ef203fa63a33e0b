"""Where a human's answer goes: the test split takes only posts a random order chose from the test reservation
(core.labels.reserved_for_test: a random draw from every candidate, made up front, so the orders that ran before
cannot thin it), so the human test set stays a random sample of what was collected, and a correction of a post's
human label keeps that label's split and sampling.
Nothing else changes a human test label unasked: an import that would asks first (changes_test_label).

The Label screen and the Spot-check screen both write through these rules.
"""

from __future__ import annotations

from dataclasses import replace

import sqlite_utils
from bizsent.core.labels import RANDOM_SAMPLING, RESERVED_SAMPLING
from bizsent.core.store.history import LabelValue
from bizsent.core.store.posts import CANDIDATE_SQL, HUMAN_TEST, current_label, set_label
from bizsent.core.store.records import NewLabel

PICKED = "picked"  # sampling of a post chosen by hand (opened from the post list)
DISAGREE_FIRST = "disagree-first"


def random_sample(order: str, disagree_first: bool) -> bool:
    """Does a session in this order take posts at random (the only way into the test split)?"""
    return order == "random" and not disagree_first


def answer_target(*, chosen_by_hand: bool, order: str, disagree_first: bool, split: str,
                  reserved: bool | None = None, corrects: LabelValue | None = None) -> tuple[str, str | None]:
    """(split, sampling) of a session's answer: the session's split only for a post its random order chose, and,
    with a test reservation (`reserved` not None), only for a reserved post. A correction of the post's human
    label `corrects` keeps that label's split and sampling (None: unchanged)."""
    if corrects is not None:
        return corrects.split, None
    if chosen_by_hand:
        return "train", PICKED
    if not random_sample(order, disagree_first):
        return "train", DISAGREE_FIRST if disagree_first else order
    if reserved is None:
        return split, RANDOM_SAMPLING
    return (split, RESERVED_SAMPLING) if reserved else ("train", RANDOM_SAMPLING)


def why_split(split: str, sampling: str | None, session_split: str, random_order: bool) -> str:
    """Why an answer goes to `split` (from answer_target) when that is not simply the session's split: what the
    Label screen's flags line says next to the split."""
    if sampling is None:
        return "correction keeps it"
    if sampling == PICKED:
        return "opened from Posts"
    if split != session_split and not random_order:
        return "test: random order only"
    if split != session_split and sampling == RANDOM_SAMPLING:
        return "not in the test reserve"
    return ""


def current_human(db: sqlite_utils.Database, post: int) -> tuple[str, LabelValue] | None:
    """The post's current human label, whoever wrote it (this console, an import, the demo): (labeler, value).
    A post has at most one; a store written before that rule may hold more, and then the console's own comes
    first."""
    row = db.execute("SELECT labeler FROM labels WHERE post_id = ? AND source = 'human'"
                     " ORDER BY labeler != 'human', id LIMIT 1", [post]).fetchone()
    if row is None:
        return None
    value = current_label(db, post, "human", row[0])
    assert value is not None
    return row[0], value


def rewrites_test_label(before: LabelValue | None, label: str, sarcastic: bool, unsure: bool) -> bool:
    """Would this answer change a human test label? Then the user confirms first: the human test set is what
    every evaluation is scored against (the history keeps the old value, but the scores move at once)."""
    return (before is not None and before.split == "test"
            and (before.label, before.sarcastic, before.unsure) != (label, sarcastic, unsure))


def write_answer(db: sqlite_utils.Database, post: int, new: NewLabel, changed_by: str) -> tuple[int, LabelValue | None]:
    """Write the human label; return its row id and the label it replaced, which an undo puts back.

    A post has at most one current human label: a correction replaces the one it has, whoever wrote it (its row,
    so the history keeps the old value), and keeps that label's split and recorded sampling: answering again
    never moves a post into or out of the test set."""
    found = current_human(db, post)
    previous = None
    if found is not None:
        labeler, previous = found
        new = replace(new, labeler=labeler, split=previous.split, sampling=None)
    return set_label(db, post, new, changed_by=changed_by), previous


def changes_test_label(db: sqlite_utils.Database, post: int, new: NewLabel) -> LabelValue | None:
    """The human test label that writing `new` would change (its label, split or flags), else None.

    The human test set is what every evaluation is scored against: a bulk write (an import) must not change it
    without the user confirming (the label history would keep the old value, but the scores move at once)."""
    if new.source != "human" or not db.execute(
            f"SELECT 1 FROM labels WHERE post_id = ? AND labeler = ? AND {HUMAN_TEST}", [post, new.labeler]).fetchone():
        return None
    before = current_label(db, post, new.source, new.labeler)
    assert before is not None
    same = (before.label, before.split, before.sarcastic, before.unsure) == (new.label, new.split, new.sarcastic,
                                                                             new.unsure)
    return None if same else before


def not_labelable(db: sqlite_utils.Database, post: int) -> str | None:
    """Why a human should not label `post` (one line), or None: only candidates (an image on disk and some text,
    core.store.posts.CANDIDATE_SQL) are ever trained or scored, so a label on anything else is lost work."""
    row = db.execute(
        f"SELECT p.image_id IS NOT NULL, coalesce(i.status, ''), trim(p.text) != '', {CANDIDATE_SQL}"
        " FROM posts p LEFT JOIN images i ON i.id = p.image_id WHERE p.id = ?", [post]).fetchone()
    if row is None:
        return f"post {post} is not in the store"
    has_image, status, has_text, candidate = row
    if candidate:
        return None
    if not has_image:
        return f"post {post} has no image: not a labeling candidate (the model reads image and text together)"
    if status != "ok":
        return f"post {post}'s image is {status or 'missing'}: not a labeling candidate until it is fetched"
    assert not has_text
    return f"post {post} has no text: not a labeling candidate (the model reads image and text together)"
