"""Agreement scores against the human test set, and combined training labels that never touch test posts."""

from __future__ import annotations

import pytest
from bizsent.core.label.agreement import agreement, combine_labels, render_agreement, scores
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from fakes.label_posts import make_posts


def test_scores_match_hand_computed_values():
    pairs = [("bearish", "bearish"), ("bearish", "neutral"), ("neutral", "neutral"), ("bullish", "bullish")]
    s = scores(pairs)
    assert s.n == 4 and s.accuracy == 0.75
    assert s.recall == {"bearish": 0.5, "neutral": 1.0, "bullish": 1.0}
    assert s.confusion == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # kappa: po = 0.75, pe = (2*1 + 1*2 + 1*1) / 16 = 5/16
    assert s.kappa == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
    assert s.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


@pytest.fixture
def labeled(db, settings):
    ids = make_posts(db, settings.image_dir, 12, human_test=6)
    truth = {pid: lab for pid, lab in db.execute("SELECT post_id, label FROM labels WHERE source = 'human'")}
    for pid in ids:
        right = truth.get(pid, "neutral")
        set_label(db, pid, NewLabel(label=right, source="api", labeler="openai:a@p1", confidence=0.9))
        set_label(db, pid, NewLabel(label="bearish", source="api", labeler="gemini:b@p1", confidence=0.9))
    set_label(db, ids[0], NewLabel(label="neutral", source="human", split="test", labeler="anon", sarcastic=True))
    return ids


def test_agreement_table_scores_each_labeler_and_pairs(db, labeled):
    table = agreement(db)
    by_name = {r["labeler"]: r for r in table.against_human}
    a, b = by_name["openai:a@p1"], by_name["gemini:b@p1"]
    assert a["n"] == 6 and a["accuracy"] < 1.0  # post 0's truth was changed
    assert b["recall"]["bearish"] == 1.0 and b["recall"]["bullish"] == 0.0
    assert a["sarcastic_n"] == 1
    assert table.pairwise[0]["n"] == 12
    assert "confusion openai:a@p1" in render_agreement(db)


@pytest.mark.parametrize("method", ["majority", "dawid-skene"])
def test_combined_labels_skip_the_human_test_set(db, labeled, method):
    result = combine_labels(db, method)
    assert result.posts == 6  # 12 posts minus the 6 in the human test set
    rows = db.execute("SELECT post_id, confidence FROM labels WHERE labeler = ?", [f"combined:{method}"]).fetchall()
    test_posts = {r[0] for r in db.execute("SELECT post_id FROM labels WHERE source = 'human' AND split = 'test'")}
    assert len(rows) == 6 and not {r[0] for r in rows} & test_posts
    assert all(0 < r[1] <= 1 for r in rows)
