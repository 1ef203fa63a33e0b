"""The candidate pool: the posts a human may still label, and a run's predictions on them.

`core.posts.POOL_SQL` is the one definition of the pool, used by scoring, the active-learning queue and the Label
screen: a candidate post (image bytes on disk and text) that the human has neither labelled nor skipped. API labels
do not take a post out of the pool: a human label is worth more than any of them.

`score_pool` scores the posts of the pool that a run has not scored yet, one batch per transaction, so a second
call scores only new posts and a killed call loses at most one batch. Each prediction keeps a small embedding
(a fixed random projection of the answer-position hidden state) for the queue's diversity step.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from bizsent.core.errors import NO_MODEL_YET, BizsentError
from bizsent.core.model.scoring import Scored, ScoreInput
from bizsent.core.store import now, transaction
from bizsent.core.store.posts import POOL_SQL

EMBED_DIM = 64  # 128 bytes a post as float16, instead of 7 KB for the 7B's 3584 hidden floats

# done, total -> keep going? (a job returns False once its row says cancelled)
Progress = Callable[[int, int], bool | None]


@dataclass(frozen=True, slots=True)
class PoolReport:
    run_id: int
    run_name: str
    pool: int  # posts in the pool now
    before: int  # of those, already scored by this run before this call
    scored: int  # scored by this call
    missing_images: int  # pool posts whose image file is gone from the cache (not scored)
    seconds: float
    stopped: bool = False  # cancelled before the end

    def summary(self) -> str:
        head = (f"run {self.run_id} ({self.run_name}): scored {self.scored} new pool posts in {self.seconds:.0f}s; "
                f"{self.before + self.scored}/{self.pool} of the pool now have a prediction")
        missing = (f"; {self.missing_images} not scored: their image file is gone from the image cache"
                   if self.missing_images else "")
        return head + missing + ("; stopped early (cancelled)" if self.stopped else "")


def pool_ids(db: sqlite_utils.Database) -> list[int]:
    return [r[0] for r in db.execute(
        f"SELECT p.id FROM posts p JOIN images i ON i.id = p.image_id WHERE {POOL_SQL} ORDER BY p.id")]


def newest_train_run(db: sqlite_utils.Database) -> int | None:
    row = db.execute("SELECT id FROM runs WHERE kind = 'train' AND state = 'done' ORDER BY id DESC").fetchone()
    return row[0] if row else None


def resolve_run(db: sqlite_utils.Database, run: int | str | None) -> dict:
    """The run that scores the pool (default: the newest finished training run), checked usable here."""
    from bizsent.core.model.loading import run_row

    if run is None:
        run = newest_train_run(db)
        if run is None:
            raise BizsentError(f"no finished training run to score the pool with: {NO_MODEL_YET}; or "
                               "`bizsent train --local` (or pass --run)")
    info = run_row(db, run)
    adapter = info["adapter_path"]
    if info["kind"] == "train" and not adapter:
        raise BizsentError(f"run {info['id']} has no adapter ({info['state']}); pick a finished run with --run")
    if adapter and not Path(adapter).exists():
        raise BizsentError(f"run {info['id']}'s adapter {adapter} is not on this machine; copy it there or "
                           "pick another run with --run")
    return info


def unscored_inputs(db: sqlite_utils.Database, image_dir: Path, run_id: int) -> tuple[list[ScoreInput], int, int]:
    """(pool posts `run_id` has not scored whose image file exists, pool size, posts already scored), by post id:
    a rerun walks the same order, so a limit then a rerun covers the pool without gaps or repeats."""
    rows = db.execute(
        "SELECT p.id, p.text, i.path, p.subject, EXISTS (SELECT 1 FROM predictions pr WHERE pr.run_id = ?"
        f" AND pr.post_id = p.id) FROM posts p JOIN images i ON i.id = p.image_id WHERE {POOL_SQL} ORDER BY p.id",
        [run_id]).fetchall()
    items = []
    for pid, text, path, subject, scored in rows:
        if not scored:
            full = path if Path(path).is_absolute() else str(image_dir / path)
            items.append(ScoreInput(pid, text, full, subject or ""))
    return items, len(rows), sum(r[4] for r in rows)


@lru_cache(maxsize=4)
def _projection(width: int) -> np.ndarray:
    # Seeded, so every post of every run lands in the same space; random projections keep cosine distances
    # roughly (Johnson-Lindenstrauss), which is all farthest-point selection needs.
    return np.random.default_rng(0).standard_normal((width, EMBED_DIM)) / math.sqrt(EMBED_DIM)


def pack_embedding(vector: Sequence[float]) -> bytes:
    v = np.asarray(vector, dtype=np.float64)
    v = v / max(float(np.linalg.norm(v)), 1e-12)  # unit length first: float16 cannot hold raw hidden states
    return (v @ _projection(len(v))).astype(np.float16).tobytes()


def unpack_embedding(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float64)


def write_pool_predictions(db: sqlite_utils.Database, run_id: int, scored: Sequence[Scored]) -> None:
    """One batch of predictions with their packed embeddings, in one transaction (an embedding that is bytes is
    packed already: a pod's, core.model.score_file)."""
    stamp = now()
    with transaction(db):
        for s in scored:
            db.execute(
                "INSERT INTO predictions (run_id, post_id, label, probs, latency_ms, embedding, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, post_id) DO UPDATE SET label = excluded.label,"
                " probs = excluded.probs, latency_ms = excluded.latency_ms, embedding = excluded.embedding,"
                " created_at = excluded.created_at",
                [run_id, s.post_id, s.label, json.dumps(s.probs), s.latency_ms,
                 s.embedding if isinstance(s.embedding, bytes) else
                 pack_embedding(s.embedding) if s.embedding is not None else None, stamp],
            )


def score_pool(db: sqlite_utils.Database, settings: Any, run: int | str | None = None, *,
               batch_size: int | None = None, limit: int | None = None, progress: Progress | None = None
               ) -> PoolReport:
    """Score the pool posts that `run` has not scored yet (at most `limit`), committing every batch."""
    from bizsent.core.model.loading import load_for_run
    from bizsent.core.model.scoring import score

    started = time.perf_counter()
    info = resolve_run(db, run)
    items, pool, before = unscored_inputs(db, settings.image_dir, info["id"])
    if pool == 0:
        raise BizsentError("the pool is empty: every candidate post (ok image + text) has a human label or skip; "
                           "add posts with `bizsent scrape` or `bizsent demo`")
    present = [item for item in items if Path(item.image_path).is_file()]
    missing = len(items) - len(present)
    todo = present[:limit] if limit is not None else present
    size = max(1, batch_size or settings.train.batch_size)
    done = 0
    stopped = False
    if todo:
        model, processor = load_for_run(info, settings)
        if progress is not None:
            progress(0, len(todo))
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            write_pool_predictions(db, info["id"], score(model, processor, chunk, batch_size=size, embeddings=True))
            done += len(chunk)
            if progress is not None and progress(done, len(todo)) is False:
                stopped = done < len(todo)
                break
    return PoolReport(info["id"], info["name"], pool, before, done, missing, time.perf_counter() - started, stopped)
