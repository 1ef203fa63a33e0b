"""Comparing two runs on the same posts: the paired statistics against hand-computed values, the posts both runs
scored on a split read from the store, and `bizsent compare` as the user runs it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from bizsent.core.evaluate.metrics import accuracy, macro_f1
from bizsent.core.evaluate.paired import (
    EXACT_BELOW,
    mcnemar,
    paired_differences,
    paired_stats,
    resample,
)

B, N, U = "bearish", "neutral", "bullish"
TRUTH = [B, B, N, N, U, U]
RUN_A = [B, N, N, U, U, B]  # 3 of 6 right; every class P = R = 1/2, macro-F1 1/2
RUN_B = [B, B, N, N, U, N]  # 5 of 6 right; F1 bearish 1, neutral 4/5, bullish 2/3


def test_point_differences_and_mcnemar_by_hand():
    stats = paired_stats(TRUTH, RUN_A, RUN_B, n_boot=200, seed=0)
    assert stats.n == 6
    assert (stats.accuracy.a, stats.accuracy.b) == pytest.approx((0.5, 5 / 6))
    assert stats.accuracy.diff == pytest.approx(1 / 3)
    assert stats.macro_f1.a == pytest.approx(0.5)
    assert stats.macro_f1.b == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    assert stats.macro_f1.diff == pytest.approx((1 + 0.8 + 2 / 3) / 3 - 0.5)
    # posts 2 and 4: B right, A wrong; none the other way; post 6 both wrong
    assert (stats.mcnemar.a_only, stats.mcnemar.b_only) == (0, 2)
    assert stats.mcnemar.p_value == pytest.approx(0.5)  # 2 * C(2,0) / 2^2
    assert stats.mcnemar.method == "exact binomial"
    assert stats.confusion_a == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert stats.confusion_b == [[2, 0, 0], [0, 2, 0], [0, 1, 1]]


def test_mcnemar_exact_below_the_cut_and_chi_square_above():
    assert mcnemar(1, 6).p_value == pytest.approx(2 * (1 + 7) / 2**7)  # 0.125
    small = mcnemar(5, 19)  # 24 discordant posts: still exact
    assert EXACT_BELOW > 5 + 19 and small.method == "exact binomial"
    assert small.p_value == pytest.approx(2 * sum(math.comb(24, k) for k in range(6)) / 2**24)  # 0.00661
    large = mcnemar(10, 30)  # (|10 - 30| - 1)^2 / 40 = 9.025 on one degree of freedom
    assert large.method == "chi-square, continuity-corrected"
    assert large.p_value == pytest.approx(0.0026631, abs=1e-6)
    assert mcnemar(0, 0).p_value == 1.0
    assert mcnemar(7, 7).p_value == 1.0  # the two-sided exact sum is capped at 1
    assert mcnemar(30, 10).p_value == pytest.approx(large.p_value)  # symmetric


def test_every_bootstrap_draw_matches_the_metrics_on_that_resample():
    rng = np.random.default_rng(3)
    truth, a, b = ([[B, N, U][k] for k in rng.integers(0, 3, 40)] for _ in range(3))
    idx = resample(len(truth), n_boot=25, seed=7)
    acc, f1 = paired_differences(truth, a, b, idx)
    for k, draw in enumerate(idx):
        t, pa, pb = ([x[j] for j in draw] for x in (truth, a, b))
        assert acc[k] == pytest.approx(accuracy(t, pb) - accuracy(t, pa))
        assert f1[k] == pytest.approx(macro_f1(t, pb) - macro_f1(t, pa))


def test_bootstrap_interval_is_seeded_paired_and_holds_the_difference():
    rng = np.random.default_rng(5)
    truth = [[B, N, U][k] for k in rng.integers(0, 3, 80)]
    a = [t if rng.random() < 0.5 else B for t in truth]
    b = [t if rng.random() < 0.8 else N for t in truth]
    one, two = paired_stats(truth, a, b, seed=1), paired_stats(truth, a, b, seed=1)
    assert one.accuracy.ci == two.accuracy.ci and one.macro_f1.ci == two.macro_f1.ci
    assert one.accuracy.ci[0] < one.accuracy.diff < one.accuracy.ci[1]
    assert one.macro_f1.ci[0] < one.macro_f1.diff < one.macro_f1.ci[1]
    same = paired_stats(truth, a, a, seed=1)  # paired: a run against itself differs by exactly nothing
    assert same.accuracy.ci == (0.0, 0.0) and same.macro_f1.ci == (0.0, 0.0)
    assert same.mcnemar.p_value == 1.0 and same.disagree == []


def test_disagreements_are_the_posts_where_the_labels_differ():
    stats = paired_stats(TRUTH, RUN_A, RUN_B, n_boot=0)
    assert stats.disagree == [1, 3, 5]  # positions; post 6 (index 5): both wrong, but differently
    assert stats.accuracy.ci is None


# -- the posts both runs scored on a split, from the store ---------------------------------------------------

@pytest.fixture
def two_runs(settings, db, tmp_path):
    from fakes.eval_runs import two_scored_runs

    return two_scored_runs(db, settings.image_dir, tmp_path)


def test_compare_on_test_uses_only_posts_both_scored_with_a_sure_human_label(db, two_runs):
    from bizsent.core.evaluate.compare import compare_runs

    store, a, b = two_runs
    c = compare_runs(db, a, b, "test", n_boot=100)
    assert [p.post_id for p in c.posts] == [store[n] for n in (1, 2, 3, 4)]
    assert (c.only_a, c.only_b) == (1, 0)  # post 5; post 6's label is unsure, post 7 has none
    assert (c.stats.accuracy.a, c.stats.accuracy.b) == (0.5, 1.0)
    assert (c.stats.mcnemar.a_only, c.stats.mcnemar.b_only) == (0, 2)
    assert [p.post_id for p in c.disagreements] == [store[2], store[3]]
    assert c.stats.confusion_b == [[2, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_compare_on_dev_takes_the_posts_in_both_runs_dev_split(db, two_runs):
    from bizsent.core.evaluate.compare import compare_runs

    store, a, b = two_runs
    c = compare_runs(db, "zero-shot", "tuned", "dev", n_boot=100)
    assert [p.post_id for p in c.posts] == [store[n] for n in (8, 9, 10)]  # 11 is not in B's dev
    assert [(p.truth, p.label_a, p.label_b) for p in c.posts] == [(B, N, B), (N, N, N), (U, U, N)]
    assert c.stats.accuracy.diff == pytest.approx(0.0)


def test_compare_refuses_bad_requests_in_one_line(db, two_runs):
    from bizsent.core.errors import BizsentError
    from bizsent.core.evaluate.compare import compare_runs
    from fakes.eval_runs import add_run

    _, a, b = two_runs
    with pytest.raises(BizsentError, match="pick two different runs"):
        compare_runs(db, a, a, "test")
    with pytest.raises(BizsentError, match="unknown split 'val'; compare on one of dev, test .training's val"):
        compare_runs(db, a, b, "val")
    lonely = add_run(db, name="unscored")
    with pytest.raises(BizsentError, match="no test post scored by both; score each with `bizsent eval RUN --test`"):
        compare_runs(db, a, lonely, "test")
    with pytest.raises(BizsentError, match="has no dev split on this machine"):
        compare_runs(db, a, lonely, "dev")


def _cli(settings, *args):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("bizsent")
    return subprocess.run([str(exe), "--db", str(settings.db_path), "compare", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_prints_tables_and_json(settings, two_runs):
    _, a, b = two_runs
    out = _cli(settings, str(a), str(b), "--split", "test")
    assert out.returncode == 0, out.stderr
    assert "on the 4 human test posts both scored (1 scored only by run" in out.stdout
    assert "accuracy (test, n=4): A 50.0% → B 100.0%, B − A +50.0 points [95% CI" in out.stdout
    assert ("McNemar on accuracy (test, n=4): B right where A wrong 2, A right where B wrong 0: p = 0.5 (exact "
            "binomial)") in out.stdout
    assert "they disagree on 2 of the 4 test posts" in out.stdout
    js = _cli(settings, "zero-shot", "tuned", "--json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert {"split", "n", "run_a", "run_b", "only_a", "only_b", "accuracy", "macro_f1", "mcnemar", "confusion_a",
            "confusion_b", "bootstrap", "disagreements"} <= set(data)
    assert data["split"] == "dev" and data["n"] == 3 and data["run_b"]["name"] == "tuned"
    assert len(data["accuracy"]["ci"]) == 2 and data["mcnemar"]["method"] == "exact binomial"
    bad = _cli(settings, str(a), str(a))
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
