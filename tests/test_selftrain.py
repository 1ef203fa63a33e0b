"""Self-training: thresholds chosen on validation data, and one real round on the tiny model."""

from __future__ import annotations

import pytest
from fakes.train import seed_store, tiny_model_dir, tiny_settings

from core.scoring import Scored
from core.selftrain import choose_thresholds, pseudo_labels, selftrain
from core.store import open_db


def _s(label, p):
    rest = (1 - p) / 2
    probs = {k: (p if k == label else rest) for k in ("bearish", "neutral", "bullish")}
    return Scored(None, label, probs, 0.0)


def test_thresholds_reach_target_precision_on_val():
    scored = [_s("bullish", 0.9), _s("bullish", 0.8), _s("bullish", 0.7), _s("bullish", 0.6), _s("bearish", 0.9)]
    truth = ["bullish", "bullish", "neutral", "bullish", "neutral"]
    th = choose_thresholds(truth, scored, target_precision=0.75)
    assert th["bullish"] == 0.6  # top 4: 3 right of 4 = 0.75
    assert choose_thresholds(truth, scored, 0.9)["bullish"] == 0.8
    assert th["bearish"] is None and th["neutral"] is None
    picked = pseudo_labels([_s("bullish", 0.85), _s("bullish", 0.5), _s("bearish", 0.99)], {"bullish": 0.8,
                                                                                          "bearish": None})
    assert [s.probs["bullish"] for s in picked] == [0.85]


def test_one_self_training_round(tmp_path, tmp_path_factory):
    settings = tiny_settings(tmp_path, tiny_model_dir(tmp_path_factory), val_fraction=0.25)
    db = open_db(settings.db_path)
    seed_store(db, settings.image_dir, n_train=12, n_test=6, n_unlabeled=6)
    lines = []
    result = selftrain(db, settings, tmp_path / "work", rounds=1, target_precision=0.0, max_steps=1,
                       load_in_4bit=False, progress=lines.append)
    assert len(result.rounds) == 1 and result.stopped == "reached 1 rounds"
    r = result.rounds[0]
    assert 0 <= r.macro_f1 <= 1 and r.train_size > 0 and set(r.thresholds) == {"bearish", "neutral", "bullish"}
    assert db.execute("SELECT state FROM runs WHERE id = ?", [r.run_id]).fetchone()[0] == "done"
    assert lines and "macro-F1" in lines[0]


def test_pseudo_labels_are_written_and_used_next_round(tmp_path, tmp_path_factory):
    from core.dataset import build_dataset
    from core.selftrain import write_pseudo_labels

    settings = tiny_settings(tmp_path, tiny_model_dir(tmp_path_factory))
    db = open_db(settings.db_path)
    ids = seed_store(db, settings.image_dir, n_train=3, n_test=3, n_unlabeled=2)
    picks = [Scored(pid, "bullish", {"bearish": 0.05, "neutral": 0.05, "bullish": 0.9}, 0.0) for pid in
             ids["unlabeled"]]
    assert write_pseudo_labels(db, picks, "selftrain:run1") == 2
    ds = build_dataset(db, settings.image_dir, settings.train)
    origins = {e.post_id: e.origin for e in ds.train + ds.val}
    assert all(origins[pid] == "pseudo" for pid in ids["unlabeled"])
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'pseudo' AND confidence = 0.9").fetchone()[0] == 2
    pytest.importorskip("torch")
