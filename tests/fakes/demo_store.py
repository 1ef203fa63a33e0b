"""The store every screenshot test opens: the built-in demo posts (core.demo, seed 7), the words on their images,
two recorded runs (a training run with its loss curve, evaluations and predictions, and a zero-shot run to compare
it with), a finished and a failed job, a terminated pod, and every timestamp fixed.

No model is trained: the runs are written as their events would be (tests.fakes.eval_runs), so the store builds in
about a second and the screens show the same figures on every machine. The words on the images are the captions
the demo drew on them (core.demo), stored as if OCR had read them: the Label and Zoom screens then show the same
line whether or not this Python has the OCR extra.
"""

from __future__ import annotations

import random

import sqlite_utils
from bizsent.core.coins import catalog
from bizsent.core.coins.tags import tag_posts
from bizsent.core.config import Settings
from bizsent.core.demo import build_posts, seed_demo
from bizsent.core.labels import LABELS
from bizsent.core.store import transaction
from bizsent.core.store.image_text import save_image_text
from bizsent.core.store.posts import CANDIDATE_SQL
from bizsent.jobs import rows
from fakes.eval_runs import add_eval, add_predictions, add_run, add_train_steps

N_POSTS = 90  # the Posts list overflows 160x45 and the Label queue is long; seeding takes a fraction of a second
SEED = 7  # the demo's own default
AT = "2025-01-15T06:00:00+00:00"  # every stored timestamp: an hour after the newest demo post


def candidates(db: sqlite_utils.Database) -> list[tuple[int, int]]:
    """(post id, post_no) of the demo posts a labeler or a model sees (an image and some text), by id."""
    return db.execute(f"SELECT p.id, p.post_no FROM posts p JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
                      " ORDER BY p.id").fetchall()


def model_probs(truth: str, rng: random.Random, skill: float) -> dict[str, float]:
    """A model's three probabilities: the true class gets `skill` more weight, the rest is noise."""
    weights = {label: rng.random() + (skill if label == truth else 0.0) for label in LABELS}
    total = sum(weights.values())
    return {label: round(w / total, 4) for label, w in weights.items()}


def confusion(db: sqlite_utils.Database, run_id: int, split: str) -> list[list[int]]:
    """The run's predictions against the human labels of `split` (rows true, columns predicted)."""
    matrix = [[0, 0, 0] for _ in LABELS]
    for truth, predicted in db.execute(
            "SELECT l.label, p.label FROM labels l JOIN predictions p ON p.post_id = l.post_id AND p.run_id = ?"
            " WHERE l.source LIKE 'human%' AND l.split = ? AND NOT l.unsure", [run_id, split]):
        matrix[LABELS.index(truth)][LABELS.index(predicted)] += 1
    return matrix


def add_scored_run(db: sqlite_utils.Database, name: str, kind: str, skill: float, seed: int) -> int:
    """A finished run that scored every candidate post (the demo's truth plus noise) and was evaluated on the human
    test set; a training run also has its loss curve and a mid-training evaluation."""
    truth = {p.post.post_no: p.scenario.truth for p in build_posts(N_POSTS, SEED)}
    rng = random.Random(seed)
    run_id = add_run(db, name=name, kind=kind)
    add_predictions(db, run_id, {pid: model_probs(truth[no], rng, skill) for pid, no in candidates(db)})
    if kind == "train":
        add_train_steps(db, run_id, 24)
        add_eval(db, run_id, confusion(db, run_id, "test"), step=12, split="val")
    add_eval(db, run_id, confusion(db, run_id, "test"), split="test")
    return run_id


def add_jobs(db: sqlite_utils.Database) -> None:
    """A finished labeling job and a failed one, as their processes leave them."""
    params = {"provider": "openai", "model": "gpt-5-mini", "mode": "batch", "limit": None, "prompt_version": "demo-v1",
              "few_shot": 0, "examples": None, "price": None}
    done = rows.create(db, "label", params, 60, {})
    rows.progress(db, done, done=58, failed=2, total=60, counts={"mode": "batch", "usd": 0.041, "estimate_usd": 0.045})
    rows.finish(db, done, "done")
    failed = rows.create(db, "label", {**params, "provider": "gemini", "model": "gemini-2.5-flash", "mode": "live"},
                         30, {})
    rows.progress(db, failed, done=4, failed=0, total=30, counts={"mode": "live", "usd": 0.002, "estimate_usd": 0.02})
    rows.finish(db, failed, "failed", error="gemini answered 429 RESOURCE_EXHAUSTED five times in a row")


def add_pod(db: sqlite_utils.Database) -> None:
    db.execute("INSERT INTO pods (pod_id, name, run_name, gpu, cloud, usd_per_hour, state, total_usd, created_at,"
               " updated_at) VALUES ('demo7pod3x9k', 'bizsent-demo-tiny', 'demo-tiny', 'NVIDIA GeForce RTX 4090',"
               " 'SECURE', 0.69, 'terminated', 0.37, ?, ?)", [AT, AT])


def add_image_text(db: sqlite_utils.Database) -> None:
    """The caption each demo image carries, as the words read on it."""
    for item in build_posts(N_POSTS, SEED):
        if item.image is None or item.corrupt:
            continue
        row = db.execute("SELECT p.image_id FROM posts p WHERE p.post_no = ?", [item.post.post_no]).fetchone()
        save_image_text(db, row[0], "\n".join(filter(None, (item.image.caption, *item.image.lines))), "demo")


def fix_times(db: sqlite_utils.Database) -> None:
    """Every stored timestamp (columns named *_at) becomes AT: dates and ages on screen read the same tomorrow."""
    with transaction(db):
        for table in db.table_names():
            for column in db[table].columns:
                if column.name.endswith("_at"):
                    db.execute(f"UPDATE [{table}] SET [{column.name}] = ? WHERE [{column.name}] IS NOT NULL", [AT])


def build_demo_store(db: sqlite_utils.Database, settings: Settings) -> dict[str, int]:
    """Fill `db` (empty) with the screenshot store; returns the ids of the runs ("tuned", "zero-shot")."""
    seed_demo(db, settings.image_dir, n_posts=N_POSTS, seed=SEED)
    tag_posts(db, catalog(settings.coins))
    add_image_text(db)
    zero_shot = add_scored_run(db, "zero-shot", "eval", skill=0.15, seed=1)
    tuned = add_scored_run(db, "demo-tiny", "train", skill=0.45, seed=2)
    add_jobs(db)
    add_pod(db)
    db.conn.commit()
    fix_times(db)
    return {"tuned": tuned, "zero-shot": zero_shot}
