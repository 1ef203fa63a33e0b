"""Scoring the candidate pool with a real run of the tiny model: exactly the pool, incremental, resumable; the one
active-learning queue behind `bizsent queue`; one-line errors from `bizsent score-pool`."""

from __future__ import annotations

import json

import pytest
from bizsent.core.errors import BizsentError
from bizsent.core.model.acquisition import human_queue, uncertainty
from bizsent.core.model.events import create_run, finish_run
from bizsent.core.model.pool import EMBED_DIM, pool_ids, score_pool
from bizsent.core.store.posts import add_skip, set_label
from bizsent.core.store.records import NewLabel
from fakes.pool_runs import bizsent, fp32_run, register_run
from fakes.train import add_post, image_bytes, seed_store

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    return fp32_run(tmp_path_factory)


@pytest.fixture
def pool_store(db, settings, shared_run):
    """Seeded posts plus the cases the pool leaves out: a human-skipped post, a human train label, a corrupt image."""
    ids = seed_store(db, settings.image_dir, n_train=3, n_test=3, n_unlabeled=5)
    skipped, human_train = ids["unlabeled"][:2]
    add_skip(db, skipped, "spam")
    set_label(db, human_train, NewLabel(label="bullish", source="human", split="train", labeler="human"))
    broken = add_post(db, settings.image_dir, 9001, "no image bytes here", None)
    run_id = register_run(db, shared_run)
    return {**ids, "skipped": skipped, "human_train": human_train, "broken": broken, "run_id": run_id}


def predictions(db, run_id):
    return {pid: (probs, created, emb) for pid, probs, created, emb in db.execute(
        "SELECT post_id, probs, created_at, embedding FROM predictions WHERE run_id = ?", [run_id])}


def test_score_pool_scores_exactly_the_pool_then_only_new_posts(db, settings, pool_store):
    run_id = pool_store["run_id"]
    expected = set(pool_store["train"]) | set(pool_store["unlabeled"][2:])  # API labels stay in the pool
    assert set(pool_ids(db)) == expected
    seen = []
    report = score_pool(db, settings, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    first = predictions(db, run_id)
    assert set(first) == expected and report.scored == len(expected) and report.before == 0
    assert seen[0] == (0, len(expected)) and seen[-1] == (len(expected), len(expected))
    for probs, _, emb in first.values():
        assert sum(json.loads(probs).values()) == pytest.approx(1.0, abs=1e-4)
        assert len(emb) == EMBED_DIM * 2  # float16
    new = [add_post(db, settings.image_dir, 9100 + k, f"fresh post {k} wagmi", image_bytes("bullish", 9100 + k))
           for k in range(2)]
    again = score_pool(db, settings, batch_size=2)
    second = predictions(db, run_id)
    assert again.scored == 2 and again.before == len(expected) and set(second) == expected | set(new)
    assert {pid: second[pid] for pid in first} == first  # nothing scored twice
    assert score_pool(db, settings).scored == 0


def test_a_limit_or_a_cancel_then_a_rerun_completes_the_pool_without_rescoring(db, settings, pool_store):
    run_id = pool_store["run_id"]
    pool = pool_ids(db)
    assert score_pool(db, settings, limit=3, batch_size=2).scored == 3
    first = predictions(db, run_id)
    assert sorted(first) == pool[:3]
    # A cancel (or a kill) after the first batch keeps that batch; nothing of the next one is written.
    stopped = score_pool(db, settings, batch_size=2, progress=lambda done, total: done == 0)
    assert stopped.stopped and stopped.scored == 2 and len(predictions(db, run_id)) == 5
    rest = score_pool(db, settings, batch_size=2)
    final = predictions(db, run_id)
    assert rest.scored == len(pool) - 5 and sorted(final) == pool
    assert {pid: final[pid] for pid in first} == first


def test_score_pool_refuses_without_a_usable_run_or_pool(db, settings, shared_run):
    with pytest.raises(BizsentError, match="no finished training run"):
        score_pool(db, settings)
    gone = create_run(db, kind="train", name="moved", base_model=shared_run["base_model"],
                      params=shared_run["params"])
    finish_run(db, gone, "done", "/nowhere/adapter")
    with pytest.raises(BizsentError, match="not on this machine"):
        score_pool(db, settings, gone)
    register_run(db, shared_run)
    with pytest.raises(BizsentError, match="the pool is empty"):
        score_pool(db, settings)


def test_queue_ranks_by_uncertainty_and_leaves_out_repeats(db, settings, pool_store):
    a, b = pool_store["unlabeled"][2:4]
    db.execute("UPDATE posts SET text = 'WAGMI >>123 to the moon!' WHERE id IN (?, ?)", [a, b])
    score_pool(db, settings)
    q = human_queue(db)
    assert q.run_id == pool_store["run_id"]
    margin_order = sorted(q.scores.values(), key=lambda s: (-uncertainty(s.probs), s.post_id))
    keep = min((a, b), key=lambda pid: [s.post_id for s in margin_order].index(pid) if pid in q.scores else 99)
    assert keep in q.ids and ({a, b} - {keep}).isdisjoint(q.ids)  # the more uncertain copy stays
    # Fewer posts than one batch: the batch is the whole window, in uncertainty order.
    assert q.ids == [s.post_id for s in margin_order if s.post_id in q.ids]
    assert set(q.ids) == set(pool_ids(db)) - ({a, b} - {keep})


def test_cli_score_pool_and_queue(db, settings, pool_store):
    empty = bizsent(settings, "queue")
    assert empty.returncode == 1 and empty.stderr.strip().count("\n") == 0
    assert "bizsent score-pool" in empty.stderr
    bad = bizsent(settings, "score-pool", "--run", "9999")
    assert bad.returncode == 1 and "run 9999 does not exist" in bad.stderr and "Traceback" not in bad.stderr
    done = bizsent(settings, "score-pool", "--limit", "4", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert "scored 4 new pool posts" in done.stdout and "4/4" in done.stderr  # the progress bar
    out = bizsent(settings, "queue", "--size", "3")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["post_id"] for line in lines] == human_queue(db).ids[:3]
    assert all(line["probs"] for line in lines)
