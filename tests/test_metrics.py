"""Metrics against hand-computed values, including the brief's CryptoBERT confusion matrix."""

from __future__ import annotations

import pytest
from bizsent.core.evaluate.metrics import (
    bootstrap_ci,
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    from_confusion,
    macro_f1,
)


def test_cryptobert_matrix_from_the_brief():
    m = from_confusion([[13, 31, 14], [5, 17, 10], [0, 5, 12]])
    assert m.n == 107
    assert round(100 * m.accuracy, 1) == 39.3
    recalls = [round(100 * m.per_class[k].recall, 1) for k in ("bearish", "neutral", "bullish")]
    assert recalls == [22.4, 53.1, 70.6]
    # precision bearish = 13/18, neutral = 17/53, bullish = 12/36
    assert m.per_class["bearish"].precision == pytest.approx(13 / 18)
    assert m.per_class["neutral"].precision == pytest.approx(17 / 53)
    assert m.per_class["bullish"].precision == pytest.approx(12 / 36)
    f1 = [2 * p * r / (p + r) for p, r in ((13 / 18, 13 / 58), (17 / 53, 17 / 32), (12 / 36, 12 / 17))]
    assert m.macro_f1 == pytest.approx(sum(f1) / 3)


def test_small_example_by_hand():
    truth = ["bearish", "bearish", "neutral", "bullish", "bullish", "neutral"]
    pred = ["bearish", "neutral", "neutral", "bullish", "bearish", "neutral"]
    cm = confusion_matrix(truth, pred)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    m = evaluate(truth, pred, n_boot=0)
    assert m.accuracy == pytest.approx(4 / 6)
    # bearish P=1/2 R=1/2 F1=1/2; neutral P=2/3 R=1 F1=0.8; bullish P=1 R=1/2 F1=2/3
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m.per_class["bullish"].support == 2


def test_absent_class_scores_zero_not_nan():
    m = evaluate(["bearish", "bearish"], ["bearish", "bearish"], n_boot=0)
    assert m.accuracy == 1.0
    assert m.per_class["bullish"].f1 == 0.0
    assert m.macro_f1 == pytest.approx(1 / 3)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    truth = ["bearish", "neutral", "bullish"] * 20
    pred = ["bearish", "neutral", "neutral"] * 20
    a = bootstrap_ci(truth, pred, macro_f1, n_boot=300, seed=3)
    b = bootstrap_ci(truth, pred, macro_f1, n_boot=300, seed=3)
    assert a == b
    point = macro_f1(truth, pred)
    assert a[0] <= point <= a[1]
    assert a[1] - a[0] > 0.01


def test_expected_calibration_error_by_hand():
    probs = [{"bearish": 0.9, "neutral": 0.05, "bullish": 0.05}, {"bearish": 0.9, "neutral": 0.05, "bullish": 0.05},
             {"bearish": 0.2, "neutral": 0.6, "bullish": 0.2}]
    truth = ["bearish", "neutral", "neutral"]
    # bin 0.9: confidence 0.9, accuracy 0.5 -> gap 0.4 weight 2/3; bin 0.6: gap 0.4 weight 1/3
    assert expected_calibration_error(probs, truth) == pytest.approx(0.4)
    perfect = [{"bearish": 1.0, "neutral": 0.0, "bullish": 0.0}]
    assert expected_calibration_error(perfect, ["bearish"]) == pytest.approx(0.0)


def test_slices_sarcastic_and_source():
    truth = ["bearish", "bullish", "neutral", "bearish"]
    pred = ["bullish", "bullish", "neutral", "bearish"]
    m = evaluate(truth, pred, sarcastic=[True, False, False, True], sources=["live", "live", "demo", "demo"], n_boot=0)
    assert m.slices["sarcastic"].n == 2
    assert m.slices["sarcastic"].accuracy == 0.5
    assert m.slices["source:demo"].accuracy == 1.0
    assert m.slices["source:live"].accuracy == 0.5
    assert m.to_dict()["slices"]["sarcastic"]["confusion"] == [[1, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_slice_macro_f1_is_over_the_classes_present_in_the_slice():
    truth = ["bearish", "bearish", "bullish", "neutral", "bullish"]
    pred = ["bearish", "bearish", "bullish", "neutral", "neutral"]
    m = evaluate(truth, pred, sarcastic=[True, True, True, False, False], n_boot=0)
    sl = m.slices["sarcastic"]  # bearish and bullish only, all right
    assert sl.accuracy == 1.0 and sl.macro_f1 == 1.0  # not 2/3: neutral is absent, not failed
    assert m.macro_f1 < 1.0 and len(m.per_class) == 3
