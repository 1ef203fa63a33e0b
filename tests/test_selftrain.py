"""Self-training: thresholds chosen on validation data with a minimum support, rounds chosen on a fixed human
validation split, rejected rounds rolled back, the test split evaluated once, one model load per round."""

from __future__ import annotations

import pytest
from bizsent.core.model.scoring import Scored
from bizsent.core.model.selftrain import (
    VAL_MAX,
    cap_per_class,
    choose_thresholds,
    fixed_validation,
    paired_gain,
    precision_lower_bound,
    pseudo_labels,
    selftrain,
)
from bizsent.core.store import open_db
from fakes.train import seed_store, tiny_model_dir, tiny_settings


def _s(label, p):
    rest = (1 - p) / 2
    probs = {k: (p if k == label else rest) for k in ("bearish", "neutral", "bullish")}
    return Scored(None, label, probs, 0.0)


def test_thresholds_use_a_lower_confidence_bound_of_precision():
    scored = [_s("bullish", 0.9), _s("bullish", 0.8), _s("bullish", 0.7), _s("bullish", 0.6), _s("bearish", 0.9)]
    truth = ["bullish", "bullish", "neutral", "bullish", "neutral"]
    th = choose_thresholds(truth, scored, target_precision=0.2, min_support=1)
    assert th["bullish"] == 0.6  # 3 right of 4: precision at least 0.25 (one-sided 95%)
    assert th["bearish"] is None and th["neutral"] is None
    picked = pseudo_labels([_s("bullish", 0.85), _s("bullish", 0.5), _s("bearish", 0.99)], {"bullish": 0.8,
                                                                                          "bearish": None})
    assert [s.probs["bullish"] for s in picked] == [0.85]


def test_five_of_five_is_not_a_precision_of_ninety_percent():
    assert precision_lower_bound(5, 5) == pytest.approx(0.05 ** (1 / 5), abs=1e-6)  # 0.55, exact binomial
    assert precision_lower_bound(0, 5) == 0.0
    five = [_s("bullish", 0.95)] * 5
    assert choose_thresholds(["bullish"] * 5, five, target_precision=0.9)["bullish"] is None
    forty = [_s("bullish", 0.95)] * 40  # 40 of 40: at least 0.928
    assert choose_thresholds(["bullish"] * 40, forty, target_precision=0.9)["bullish"] == 0.95


def test_pseudo_labels_are_capped_per_class_at_the_training_share():
    picks = [_s("bullish", 0.9 - k / 100) for k in range(10)] + [_s("bearish", 0.8), _s("bearish", 0.7)]
    kept = cap_per_class(picks, {"bullish": 10, "neutral": 10, "bearish": 10})
    assert [s.probs["bullish"] for s in kept if s.label == "bullish"] == [0.9, 0.89, 0.88, 0.87]  # ceil(12 / 3)
    assert sum(s.label == "bearish" for s in kept) == 2


def test_a_round_is_accepted_only_above_the_noise_of_its_validation_set():
    import random

    rng = random.Random(0)
    truth = [("bearish", "neutral", "bullish")[k % 3] for k in range(150)]
    before = [t if rng.random() < 0.6 else ("neutral" if t != "neutral" else "bullish") for t in truth]
    slightly = list(before)
    wrong = [k for k, (t, b) in enumerate(zip(truth, before, strict=True)) if t != b]
    for k in wrong[:2]:
        slightly[k] = truth[k]
    gain, low = paired_gain(truth, before, slightly)
    assert gain > 0 and low <= 0  # two posts more right: within the noise of 150 posts
    clearly = list(before)
    for k in wrong[:30]:
        clearly[k] = truth[k]
    gain, low = paired_gain(truth, before, clearly)
    assert low > 0.05 and gain > low


def test_validation_is_sized_for_the_noise_not_half_the_human_labels():
    from types import SimpleNamespace

    pool = [SimpleNamespace(post_id=k, origin="human", label=("bearish", "neutral", "bullish")[k % 3])
            for k in range(3000)]
    ids, source = fixed_validation(pool, 0.3, seed=1)
    assert source == "human" and 395 <= len(ids) <= VAL_MAX  # not 900: the other human labels train


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
    assert result.val_source == "api" and "api labels" in lines[0]  # the seeded train pool has no human labels
    assert any("validation macro-F1" in line for line in lines)
    assert "Test evaluated once" in lines[-1] and result.test is not None and result.test.n == 6


def test_pseudo_labels_are_written_and_used_next_round(tmp_path, tmp_path_factory):
    from bizsent.core.model.dataset import build_dataset
    from bizsent.core.model.selftrain import write_pseudo_labels

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


def test_one_lucky_prediction_does_not_set_a_threshold():
    scored = [_s("bullish", 0.95), _s("bullish", 0.9), _s("bearish", 0.9)] + [_s("neutral", 0.6)] * 6
    truth = ["bullish", "bullish", "bearish"] + ["neutral"] * 5 + ["bearish"]
    th = choose_thresholds(truth, scored, target_precision=0.4)  # default minimum support
    assert th["bullish"] is None and th["bearish"] is None  # 2 and 1 predictions: too few to trust
    assert th["neutral"] == 0.6  # 5 of 6 right: precision at least 0.42


def _human_train_labels(db, ids, n):
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    for pid in ids[:n]:
        label = db.execute("SELECT label FROM labels WHERE post_id = ? LIMIT 1", [pid]).fetchone()[0]
        set_label(db, pid, NewLabel(label=label, source="human", split="train", labeler="human:t"))


def _counting(monkeypatch):
    """Count model loads and test evaluations; check that no earlier model is alive when a new one loads."""
    import gc
    import weakref

    import bizsent.core.evaluate.report
    import bizsent.core.model.modeling

    calls = {"loads": 0, "evaluations": [], "alive_at_load": 0}
    refs: list = []
    real_load, real_eval = bizsent.core.model.modeling.load_model, bizsent.core.evaluate.report.evaluate_run

    def load(*args, **kwargs):
        gc.collect()
        calls["alive_at_load"] += sum(r() is not None for r in refs)
        calls["loads"] += 1
        model = real_load(*args, **kwargs)
        refs.append(weakref.ref(model))
        return model

    def evaluate(db, settings, run, **kwargs):
        assert kwargs.get("split") == "test"
        calls["evaluations"].append(run)
        return real_eval(db, settings, run, **kwargs)

    monkeypatch.setattr(bizsent.core.model.modeling, "load_model", load)
    monkeypatch.setattr("bizsent.core.model.training.load_model", load)
    monkeypatch.setattr(bizsent.core.evaluate.report, "evaluate_run", evaluate)
    return calls


def _script_validation(monkeypatch, f1s: list[float]) -> None:
    """Each round's validation macro-F1 comes from `f1s` (a 1-step random model scores them at random), and every
    class gets a threshold of 0 (such a model predicts one class on validation at best)."""
    import bizsent.core.model.selftrain

    scripted = iter(f1s)
    seen: list[float] = []
    real_metrics = bizsent.core.model.selftrain.val_metrics

    def metrics(truth, scored):
        m = real_metrics(truth, scored)
        m.macro_f1 = next(scripted)
        seen.append(m.macro_f1)
        return m

    def gain(truth, before, after, **kwargs):  # a scripted gain is taken as clear of the noise
        return seen[-1] - max(seen[:-1]), seen[-1] - max(seen[:-1])

    monkeypatch.setattr(bizsent.core.model.selftrain, "val_metrics", metrics)
    monkeypatch.setattr(bizsent.core.model.selftrain, "paired_gain", gain)
    monkeypatch.setattr(bizsent.core.model.selftrain, "choose_thresholds",
                        lambda *a: dict.fromkeys(("bearish", "neutral", "bullish"), 0.0))


def test_rounds_are_chosen_on_a_fixed_human_validation_split_and_test_is_scored_once(tmp_path, tmp_path_factory,
                                                                                    monkeypatch):
    from bizsent.core.model.dataset import read_split

    settings = tiny_settings(tmp_path, tiny_model_dir(tmp_path_factory), val_fraction=0.25,
                             min_label_confidence=0.0)  # a 1-step random model is never confident
    db = open_db(settings.db_path)
    ids = seed_store(db, settings.image_dir, n_train=15, n_test=6, n_unlabeled=6)
    _human_train_labels(db, ids["train"], 12)
    calls = _counting(monkeypatch)
    _script_validation(monkeypatch, [0.5, 0.6])  # round 1 beats round 0 on validation
    lines = []
    result = selftrain(db, settings, tmp_path / "work", rounds=2, target_precision=0.0, min_support=1, max_steps=1,
                       load_in_4bit=False, progress=lines.append)
    assert [r.accepted for r in result.rounds] == [True, True] and result.chosen.round == 1
    # every unlabeled post clears a 0-precision threshold; the per-class cap keeps at most its class's share
    assert 2 <= result.rounds[0].pseudo_added <= 6
    vals = [read_split(tmp_path / "work" / f"round{n}" / "bundle", "val") for n in range(2)]
    assert [r["post_id"] for r in vals[0]] == [r["post_id"] for r in vals[1]] == result.val_posts
    assert result.val_source == "human" and all(r["origin"] == "human" for v in vals for r in v)
    assert not set(result.val_posts) & set(ids["unlabeled"])
    train1 = read_split(tmp_path / "work" / "round1" / "bundle", "train")
    written = {r[0] for r in db.execute("SELECT post_id FROM labels WHERE source = 'pseudo'")}
    assert {r["post_id"] for r in train1 if r["origin"] == "pseudo"} == written <= set(ids["unlabeled"])
    assert len(written) == result.rounds[0].pseudo_added
    assert calls["evaluations"] == [result.chosen.run_id]  # the test split, once, for the chosen round
    assert calls["loads"] == 3 and calls["alive_at_load"] == 0  # one load a round + the test evaluation
    assert "Rounds chosen on validation" in lines[-1] and "Test evaluated once" in lines[-1]


def test_a_rejected_round_is_rolled_back(tmp_path, tmp_path_factory, monkeypatch):

    settings = tiny_settings(tmp_path, tiny_model_dir(tmp_path_factory), val_fraction=0.25,
                             min_label_confidence=0.0)  # a 1-step random model is never confident
    db = open_db(settings.db_path)
    ids = seed_store(db, settings.image_dir, n_train=12, n_test=6, n_unlabeled=4)
    calls = _counting(monkeypatch)
    _script_validation(monkeypatch, [0.6, 0.5])  # round 1 is worse on validation
    result = selftrain(db, settings, tmp_path / "work", rounds=3, target_precision=0.0, min_support=1, max_steps=1,
                       load_in_4bit=False, progress=lambda line: None)
    assert [r.accepted for r in result.rounds] == [True, False] and result.chosen.round == 0
    added = result.rounds[0].pseudo_added
    assert added >= 1 and result.rolled_back == added and "deleted" in result.stopped
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'pseudo'").fetchone()[0] == 0
    history = db.execute("SELECT count(*) FROM label_history WHERE source = 'pseudo' AND change = 'delete'")
    assert history.fetchone()[0] == added and len(ids["unlabeled"]) == 4
    assert calls["evaluations"] == [result.rounds[0].run_id]


def test_pseudo_labels_below_the_training_minimum_are_not_written():
    """The dataset builder leaves out pseudo labels below train.min_label_confidence: selftrain must not count them."""
    scored = [Scored(1, "bullish", {"bearish": 0.2, "neutral": 0.25, "bullish": 0.55}, 0.0),
              Scored(2, "bullish", {"bearish": 0.1, "neutral": 0.1, "bullish": 0.8}, 0.0)]
    thresholds = {"bearish": None, "neutral": None, "bullish": 0.5}
    assert [s.post_id for s in pseudo_labels(scored, thresholds)] == [1, 2]
    assert [s.post_id for s in pseudo_labels(scored, thresholds, floor=0.6)] == [2]


def test_a_missing_image_is_reported_before_training_not_a_crash_after_it(tmp_path, tmp_path_factory, monkeypatch):
    settings = tiny_settings(tmp_path, tiny_model_dir(tmp_path_factory), val_fraction=0.25,
                             min_label_confidence=0.0)
    db = open_db(settings.db_path)
    ids = seed_store(db, settings.image_dir, n_train=12, n_test=6, n_unlabeled=4)
    gone = ids["unlabeled"][0]
    path = db.execute("SELECT i.path FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?",
                      [gone]).fetchone()[0]
    (settings.image_dir / path).unlink()
    _script_validation(monkeypatch, [0.5, 0.6])
    lines: list[str] = []
    result = selftrain(db, settings, tmp_path / "work", rounds=2, target_precision=0.0, min_support=1, max_steps=1,
                       load_in_4bit=False, progress=lines.append)
    missing = next(k for k, line in enumerate(lines) if "image file is gone" in line)
    assert f"posts {gone}" in lines[missing]
    assert missing < next(k for k, line in enumerate(lines) if line.startswith("round 0:"))
    assert len(result.rounds) == 2 and result.rounds[0].pseudo_added >= 1
    assert not db.execute("SELECT 1 FROM labels WHERE post_id = ? AND source = 'pseudo'", [gone]).fetchone()
