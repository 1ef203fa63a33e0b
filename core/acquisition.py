"""Active learning: which unlabeled posts the human should label next.

Uncertainty (smallest margin between the top two classes, or highest entropy) picks a pool several times the
batch size; greedy farthest-point selection on the model's pooled hidden states then takes a batch that
spreads over that pool, so one batch does not hold five copies of the same meme.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sqlite_utils

from core.posts import CANDIDATE_SQL
from core.scoring import Scored, ScoreInput

Strategy = Literal["uncertainty", "random"]


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
    if not pool or pool[0].embedding is None:
        return pool[:k]
    picks = farthest_point(np.array([s.embedding for s in pool], dtype=float), k)
    return [pool[i] for i in sorted(picks)]


def unlabeled_inputs(db: sqlite_utils.Database, image_dir: Path, limit: int | None = None) -> list[ScoreInput]:
    """Candidate posts with no label from any source and not skipped by the human."""
    sql = (f"SELECT p.id, p.text, i.path, p.subject FROM posts p JOIN images i ON i.id = p.image_id"
           f" WHERE {CANDIDATE_SQL} AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id)"
           f" AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.post_id = p.id) ORDER BY p.id")
    rows = db.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
    return [ScoreInput(pid, text, path if Path(path).is_absolute() else str(image_dir / path), subject or "")
            for pid, text, path, subject in rows]


def rank_queue(db: sqlite_utils.Database, image_dir: Path, k: int, *, strategy: Strategy = "uncertainty",
               model: Any = None, processor: Any = None, batch_size: int = 8, seed: int = 0) -> list[Scored]:
    """The human queue: `random` needs no model; `uncertainty` scores every unlabeled candidate first."""
    from core.scoring import score

    inputs = unlabeled_inputs(db, image_dir)
    if strategy == "random":
        chosen = random.Random(seed).sample(inputs, min(k, len(inputs)))
        return [Scored(i.post_id, "neutral", {}, 0.0) for i in chosen]
    scored = score(model, processor, inputs, batch_size=batch_size, embeddings=True)
    return select(scored, k, strategy=strategy, seed=seed)
