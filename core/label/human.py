"""Where a human's answer goes: the test split takes only posts a random order chose, so the human test set stays
a random sample of the pool, and a correction of a post's human label keeps that label's split and sampling.

The Label screen and the Spot-check screen both write through these rules.
"""

from __future__ import annotations

from dataclasses import replace

import sqlite_utils
from bizsent.core.labels import RANDOM_SAMPLING
from bizsent.core.store.history import LabelValue
from bizsent.core.store.posts import current_label, set_label
from bizsent.core.store.records import NewLabel

PICKED = "picked"  # sampling of a post chosen by hand (opened from the post list)
DISAGREE_FIRST = "disagree-first"


def random_sample(order: str, disagree_first: bool) -> bool:
    """Does a session in this order take posts at random (the only way into the test split)?"""
    return order == "random" and not disagree_first


def answer_target(*, chosen_by_hand: bool, order: str, disagree_first: bool, split: str) -> tuple[str, str]:
    """(split, sampling) of a session's answer: the session's split only for a post its random order chose."""
    if chosen_by_hand:
        return "train", PICKED
    if not random_sample(order, disagree_first):
        return "train", DISAGREE_FIRST if disagree_first else order
    return split, RANDOM_SAMPLING


def write_answer(db: sqlite_utils.Database, post: int, new: NewLabel, changed_by: str) -> tuple[int, LabelValue | None]:
    """Write the human label; return its row id and the label it replaced, which an undo puts back.

    A correction of a post's human label keeps that label's split and recorded sampling: answering again never
    moves a post into or out of the test set."""
    previous = current_label(db, post, new.source, new.labeler)
    if previous is not None:
        new = replace(new, split=previous.split, sampling=None)
    return set_label(db, post, new, changed_by=changed_by), previous
