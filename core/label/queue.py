"""The human labeling queue: which pool posts a labeling session walks through, in what order, and what of each
post it shows.

The pool is core.store.posts.POOL_SQL; `active` is the engine's active-learning queue (the one `bizsent queue`
prints). The console's Label screen asks these in worker threads, each on a connection of its own.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlite_utils
from bizsent.core.errors import NO_MODEL_YET
from bizsent.core.labels import LABELS, origin_sql, reserved_for_test
from bizsent.core.store.posts import DISAGREE_SQL, POOL_SQL, text_match

QUEUE_ORDERS = ("random", "newest", "filter", "active")
NO_PREDICTIONS = (f"no model has scored the pool yet (random order meanwhile): {NO_MODEL_YET}; with a trained run, "
                  "`p` scores the pool")
RESERVE_DONE = ("every post of the test reservation (labeling.test_reserve) is labelled or skipped: press `t` to "
                "label the training pool, or raise labeling.test_reserve")
QUEUE_EMPTY = ("every candidate post has a human label or a skip: change the order or the filter (o, f), or go "
               "scrape more posts")


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
    split: str = "train"  # the session's split: a random test session walks the test reservation only
    test_reserve: float = 0.0  # labeling.test_reserve (0: no reservation)

    @property
    def test_session(self) -> bool:
        """Does the session label the test reservation (test split, random order, no disagreements first)?"""
        return self.split == "test" and self.order == "random" and not self.disagree_first

    @property
    def empty_says(self) -> str:
        """Why the session has no post left: a test session walks only the reservation, not every candidate."""
        return RESERVE_DONE if self.test_reserve > 0 and self.test_session else QUEUE_EMPTY


@dataclass(frozen=True, slots=True)
class LabelQueue:
    ids: list[int]
    notice: str = ""  # one line for the user, e.g. why the active-learning order fell back to random


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


def label_queue(db: sqlite_utils.Database, spec: QueueSpec) -> LabelQueue:
    """The pool (candidates with no human label or skip) in the session's order; `active` is random, with a
    notice saying so, while no run has scored the pool."""
    where = [POOL_SQL]
    args: list[object] = []
    if spec.order == "filter":
        if spec.label:
            where.append("EXISTS (SELECT 1 FROM labels f WHERE f.post_id = p.id AND f.label = ?"
                         + (f" AND {origin_sql('f')} = ?)" if spec.label_source else ")"))
            args += [spec.label] + ([spec.label_source] if spec.label_source else [])
        if spec.text.strip():
            condition, more = text_match(spec.text.strip())
            where.append(condition)
            args += more
    order = "p.time DESC, p.id DESC" if spec.order in ("newest", "filter") else "p.id"
    sql = f"SELECT p.id FROM posts p JOIN images i ON i.id = p.image_id WHERE {' AND '.join(where)} ORDER BY {order}"
    ids = [r[0] for r in db.execute(sql, args) if r[0] not in spec.exclude]
    notice = ""
    if spec.order == "active":
        from bizsent.core.model.acquisition import human_queue  # numpy and the scoring types: this order only

        active = human_queue(db)
        if active.run_id is not None:
            ids = [pid for pid in active.ids if pid not in spec.exclude]
        else:
            notice = NO_PREDICTIONS
    if spec.test_reserve > 0:  # the reservation is the test session's alone, whatever order the others use
        ids = [pid for pid in ids if reserved_for_test(pid, spec.test_reserve) == spec.test_session]
        if spec.test_session and not ids and not notice:
            notice = RESERVE_DONE
    if spec.order == "random" or notice:
        random.Random(spec.seed).shuffle(ids)
    if spec.disagree_first:
        disagreeing = disagreeing_posts(db)
        ids = [pid for pid in ids if pid in disagreeing] + [pid for pid in ids if pid not in disagreeing]
    return LabelQueue(ids, notice)


def disagreeing_posts(db: sqlite_utils.Database) -> set[int]:
    """Posts to which two API labelers gave different labels."""
    return {r[0] for r in db.execute(f"SELECT p.id FROM posts p WHERE {DISAGREE_SQL}")}


@dataclass(frozen=True, slots=True)
class LabelPost:
    """What a labeling session shows of a post: text and image only, never its other labels."""

    id: int
    subject: str
    text: str
    time: int | None
    image_path: str | None
    image_text: str | None = None  # the words read on its image (None: not read yet)


def label_posts(db: sqlite_utils.Database, ids: Sequence[int]) -> list[LabelPost]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = {
        r[0]: LabelPost(*r)
        for r in db.execute(
            f"SELECT p.id, p.subject, p.text, p.time, coalesce(i.path, i.thumb_path), t.text FROM posts p"
            f" LEFT JOIN images i ON i.id = p.image_id LEFT JOIN image_text t ON t.image_id = p.image_id"
            f" WHERE p.id IN ({marks})",
            list(ids),
        )
    }
    return [rows[i] for i in ids if i in rows]
