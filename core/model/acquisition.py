"""Active learning: which posts the human should label next. `human_queue` is the one queue that
`bizsent queue` and the Label screen's active-learning order both serve.

The queue is the pool (core.posts.POOL_SQL: candidates without a human label or skip), ranked by the predictions
of the newest run that scored it (`bizsent score-pool`). Posts whose image (sha256) or normalised text repeats a
post already queued are left out, keeping the more uncertain copy. Then, batch by batch, uncertainty (smallest
margin between the top two classes) picks a window several times the batch size and greedy farthest-point
selection on the predictions' embeddings takes a batch that spreads over it, so one batch does not hold five
variants of the same meme. Posts the run has not scored follow, in post order.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import numpy as np
import sqlite_utils
from bizsent.core.model.leakage import normalise_text
from bizsent.core.model.pool import pool_ids, unpack_embedding
from bizsent.core.model.scoring import Scored, ScoreInput
from bizsent.core.store.posts import CANDIDATE_SQL, POOL_SQL

Strategy = Literal["uncertainty", "random"]
BATCH = 20  # posts per diverse batch of the queue (a labeling sitting's worth)
WINDOW_FACTOR = 5  # each batch is picked from this many times its size of the most uncertain posts


def margin(probs: dict[str, float]) -> float:
    """Top-1 minus top-2 probability: small means the model hesitates between two classes."""
    top = sorted(probs.values(), reverse=True)
    return top[0] - top[1]


def entropy(probs: dict[str, float]) -> float:
    return -sum(p * math.log(p) for p in probs.values() if p > 0)


def uncertainty(probs: dict[str, float], measure: str = "margin") -> float:
    """Higher is more uncertain, whichever measure."""
    return entropy(probs) if measure == "entropy" else 1.0 - margin(probs)


def farthest_point(vectors: np.ndarray, k: int, start: int = 0) -> list[int]:
    """Greedy k-center: each next pick is the vector farthest (cosine) from everything picked so far."""
    if len(vectors) == 0 or k <= 0:
        return []
    unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    picked = [start]
    dist = 1.0 - unit @ unit[start]
    while len(picked) < min(k, len(vectors)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 1e-9:
            break  # only duplicates of picked posts remain
        picked.append(nxt)
        dist = np.minimum(dist, 1.0 - unit @ unit[nxt])
    return picked


def select(scored: Sequence[Scored], k: int, *, strategy: Strategy = "uncertainty", measure: str = "margin",
           pool_factor: int = 5, seed: int = 0) -> list[Scored]:
    """The next `k` posts to label, most uncertain first."""
    if strategy == "random":
        items = list(scored)
        random.Random(seed).shuffle(items)
        return items[:k]
    ranked = sorted(scored, key=lambda s: uncertainty(s.probs, measure), reverse=True)
    pool = ranked[: max(k, k * pool_factor)]
    if not pool or any(s.embedding is None for s in pool):
        return pool[:k]
    picks = farthest_point(np.array([s.embedding for s in pool], dtype=float), k)
    return [pool[i] for i in sorted(picks)]


def unlabeled_inputs(db: sqlite_utils.Database, image_dir: Path, limit: int | None = None) -> list[ScoreInput]:
    """Candidate posts with no label from any source and not skipped by the human (self-training's input)."""
    sql = (f"SELECT p.id, p.text, i.path, p.subject FROM posts p JOIN images i ON i.id = p.image_id"
           f" WHERE {CANDIDATE_SQL} AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id)"
           f" AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.post_id = p.id) ORDER BY p.id")
    rows = db.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
    return [ScoreInput(pid, text, path if Path(path).is_absolute() else str(image_dir / path), subject or "")
            for pid, text, path, subject in rows]


def with_images(items: list[ScoreInput]) -> tuple[list[ScoreInput], list[ScoreInput]]:
    """(items whose image file is there, items whose file is gone from the cache): checked before an expensive
    step, so a missing file is reported instead of failing a scoring pass after training."""
    present = [item for item in items if Path(item.image_path).is_file()]
    return present, [item for item in items if not Path(item.image_path).is_file()]


@dataclass(frozen=True, slots=True)
class Queue:
    """The human queue: every pool post worth labelling, in the order to label them."""

    ids: list[int]
    run_id: int | None = None  # the run whose predictions rank it; None: random order (or nothing scored)
    scores: dict[int, Scored] = field(default_factory=dict)  # the run's predictions on queued posts


def scoring_run(db: sqlite_utils.Database) -> int | None:
    """The newest run with a prediction on a post that is in the pool now (a run `bizsent score-pool` used)."""
    row = db.execute(
        "SELECT pr.run_id FROM predictions pr JOIN posts p ON p.id = pr.post_id JOIN images i ON i.id = p.image_id"
        f" WHERE {POOL_SQL} ORDER BY pr.run_id DESC LIMIT 1").fetchone()
    return row[0] if row else None


def drop_repeats(db: sqlite_utils.Database, ids: Sequence[int]) -> list[int]:
    """`ids` in order, without posts whose image (sha256) or normalised text repeats one already kept."""
    keys: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        for pid, sha, subject, text in db.execute(
            f"SELECT p.id, coalesce(i.sha256, ''), p.subject, p.text FROM posts p LEFT JOIN images i"
            f" ON i.id = p.image_id WHERE p.id IN ({','.join('?' * len(chunk))})", chunk,
        ):
            keys[pid] = (sha, normalise_text(f"{subject or ''} {text}"))
    images: set[str] = set()
    texts: set[str] = set()
    out = []
    for pid in ids:
        sha, text = keys.get(pid, ("", ""))
        if (sha and sha in images) or (text and text in texts):
            continue
        images.add(sha)
        texts.add(text)
        out.append(pid)
    return out


def diverse_batches(ranked: Sequence[Scored], batch: int = BATCH, window_factor: int = WINDOW_FACTOR
                    ) -> list[Scored]:
    """All of `ranked` (most uncertain first), reordered batch by batch: each batch is a spread-out pick
    (farthest-point on embeddings) from the most uncertain posts not yet queued."""
    rest = iter(ranked)
    window: list[Scored] = []
    out: list[Scored] = []
    while True:
        window.extend(islice(rest, batch * window_factor - len(window)))
        if not window:
            return out
        picked = select(window, batch, pool_factor=window_factor)
        out.extend(picked)
        taken = {id(s) for s in picked}
        window = [s for s in window if id(s) not in taken]


def run_predictions(db: sqlite_utils.Database, run_id: int, ids: Sequence[int]) -> dict[int, Scored]:
    wanted = set(ids)
    return {pid: Scored(pid, label, json.loads(probs), latency or 0.0,
                        unpack_embedding(emb).tolist() if emb is not None else None)
            for pid, label, probs, latency, emb in db.execute(
                "SELECT post_id, label, probs, latency_ms, embedding FROM predictions WHERE run_id = ?", [run_id])
            if pid in wanted}


def human_queue(db: sqlite_utils.Database, *, strategy: Strategy = "uncertainty", run_id: int | None = None,
                seed: int = 0) -> Queue:
    """The pool in labeling order: `uncertainty` as the module says (random order when no run has scored the
    pool), `random` a seeded shuffle."""
    ids = pool_ids(db)
    run = run_id if run_id is not None or strategy == "random" else scoring_run(db)
    if run is None:
        random.Random(seed).shuffle(ids)
        return Queue(ids)
    scores = run_predictions(db, run, ids)
    ranked = sorted(scores.values(), key=lambda s: (-uncertainty(s.probs), s.post_id))
    kept = set(drop_repeats(db, [s.post_id for s in ranked] + [pid for pid in ids if pid not in scores]))
    order = [s.post_id for s in diverse_batches([s for s in ranked if s.post_id in kept])]
    order += [pid for pid in ids if pid in kept and pid not in scores]
    return Queue(order, run, {pid: scores[pid] for pid in order if pid in scores})
