"""Active learning: uncertainty measures and diverse batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bizsent.core.model.acquisition import entropy, farthest_point, margin, select, unlabeled_inputs
from bizsent.core.model.scoring import Scored
from fakes.train import seed_store


def _s(pid, probs, emb):
    return Scored(pid, max(probs, key=probs.get), probs, 0.0, emb)


def test_margin_and_entropy_by_hand():
    p = {"bearish": 0.5, "neutral": 0.3, "bullish": 0.2}
    assert margin(p) == pytest.approx(0.2)
    assert entropy(p) == pytest.approx(-(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)))
    assert entropy({"bearish": 1.0, "neutral": 0.0, "bullish": 0.0}) == 0.0


def test_farthest_point_skips_duplicates():
    vectors = np.array([[1, 0], [1, 0], [0.99, 0.01], [0, 1], [-1, 0]], dtype=float)
    picks = farthest_point(vectors, 3)
    assert picks[0] == 0 and set(picks) == {0, 3, 4}
    assert farthest_point(np.array([[1.0, 0.0], [1.0, 0.0]]), 2) == [0]


def test_select_prefers_uncertain_and_diverse():
    unsure = {"bearish": 0.34, "neutral": 0.33, "bullish": 0.33}
    sure = {"bearish": 0.98, "neutral": 0.01, "bullish": 0.01}
    scored = [_s(1, unsure, [1, 0]), _s(2, unsure, [1, 0]), _s(3, unsure, [0, 1]), _s(4, sure, [-1, 0]),
              _s(5, unsure, [0.7, 0.7])]
    picked = select(scored, 2, pool_factor=2)
    assert {s.post_id for s in picked} == {1, 3}  # not the duplicate 2, not the confident 4
    assert len(select(scored, 3, strategy="random", seed=1)) == 3


def test_unlabeled_inputs_are_unlabeled_candidates(db, settings):
    ids = seed_store(db, settings.image_dir, n_train=3, n_test=3, n_unlabeled=4)
    assert [i.post_id for i in unlabeled_inputs(db, settings.image_dir)] == ids["unlabeled"]


def test_diverse_batches_spread_each_batch_and_keep_every_post():
    from bizsent.core.model.acquisition import diverse_batches

    unsure = {"bearish": 0.34, "neutral": 0.33, "bullish": 0.33}
    # The four most uncertain posts are nearly the same picture: a batch of 2 takes the first of them and the
    # other direction; the near-copies follow in later batches, each spread as far as the rest allows.
    ranked = [_s(1, unsure, [1, 0]), _s(2, unsure, [1, 0.01]), _s(3, unsure, [1, 0.02]), _s(4, unsure, [1, 0.03]),
              _s(5, unsure, [0, 1])]
    order = [s.post_id for s in diverse_batches(ranked, batch=2, window_factor=3)]
    assert order == [1, 5, 2, 4, 3]
    assert [s.post_id for s in diverse_batches([_s(7, unsure, None), _s(8, unsure, None)], batch=1)] == [7, 8]


def test_packed_embeddings_keep_directions():
    from bizsent.core.model.pool import EMBED_DIM, pack_embedding, unpack_embedding

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(512) * 300, rng.standard_normal(512) * 300  # raw hidden states run large
    pa, pb = unpack_embedding(pack_embedding(a)), unpack_embedding(pack_embedding(b))
    assert len(pack_embedding(a)) == EMBED_DIM * 2 and np.isfinite(pa).all()

    def cos(x, y):
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    assert cos(pa, unpack_embedding(pack_embedding(a * 2))) == pytest.approx(1.0, abs=1e-3)
    assert abs(cos(pa, pb)) < 0.5  # unrelated vectors stay far apart
