"""Metrics against small hand-computed cases."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from emovox.errors import BadLabel, EmovoxError
from emovox.labels import get_scheme
from emovox.evaluation.metrics import (
    classification_metrics,
    compare_table,
    confusion,
    expected_calibration_error,
    fit_temperature,
    majority_baseline,
    marginalise,
    reliability_bins,
    row_normalise,
    softmax,
)

CREMA6 = get_scheme("crema-d-6")
CREMA21 = get_scheme("crema-d-21")


def _probs_for(y_pred: list[int], n_classes: int, top: float = 0.9) -> np.ndarray:
    """Rows with ``top`` on the predicted class and the rest spread evenly."""
    probs = np.full((len(y_pred), n_classes), (1 - top) / (n_classes - 1))
    probs[np.arange(len(y_pred)), y_pred] = top
    return probs


# 8 of class 0, 2 of class 1; one 0 predicted as 2 (a class absent from y_true), one 1 missed.
Y_TRUE = [0] * 8 + [1, 1]
Y_PRED = [0] * 7 + [2] + [1, 0]


@pytest.fixture
def imbalanced() -> dict:
    return classification_metrics(Y_TRUE, _probs_for(Y_PRED, len(CREMA6)), CREMA6)


def test_accuracy_uar_macro_f1_on_imbalanced_set(imbalanced: dict) -> None:
    assert imbalanced["accuracy"] == pytest.approx(0.8)
    assert imbalanced["uar"] == pytest.approx((7 / 8 + 1 / 2) / 2)  # 0.6875, not 0.8
    # over classes {0, 1} (true) and {2} (predicted): F1 = 7/8, 2/3, 0
    assert imbalanced["macro_f1"] == pytest.approx((7 / 8 + 2 / 3 + 0) / 3)
    assert imbalanced["n"] == 10
    assert imbalanced["majority_accuracy"] == pytest.approx(0.8)


def test_loss_is_mean_cross_entropy_unless_given(imbalanced: dict) -> None:
    expected = (8 * -math.log(0.9) + 2 * -math.log(0.1 / 5)) / 10
    assert imbalanced["loss"] == pytest.approx(expected)
    given = classification_metrics(Y_TRUE, _probs_for(Y_PRED, 6), CREMA6, loss=1.25)
    assert given["loss"] == 1.25


def test_per_class_lists_every_label(imbalanced: dict) -> None:
    per_class = imbalanced["per_class"]
    assert list(per_class) == list(CREMA6.labels)
    ang, dis, fea = (per_class[lab] for lab in ("ANG", "DIS", "FEA"))
    assert ang == pytest.approx({"precision": 7 / 8, "recall": 7 / 8, "f1": 7 / 8, "support": 8})
    assert dis == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert fea == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert per_class["SAD"]["support"] == 0


def test_metrics_are_strict_json_and_flat_scheme_has_no_marginals(imbalanced: dict) -> None:
    json.dumps(imbalanced, allow_nan=False)
    assert not any(k.startswith(("emotion_", "intensity_")) for k in imbalanced)
    assert imbalanced["ece"] == pytest.approx(0.1)  # every confidence 0.9, accuracy 0.8


@pytest.mark.filterwarnings("error")
def test_float32_probabilities_score_without_warnings() -> None:
    logits = np.random.default_rng(0).normal(scale=3.0, size=(500, len(CREMA6)))
    probs32 = softmax(logits).astype(np.float32)
    y = np.arange(500) % len(CREMA6)
    m = classification_metrics(y, probs32, CREMA6)
    assert m["loss"] == pytest.approx(-np.log(softmax(logits)[np.arange(500), y]).mean(), rel=1e-5)


def _crema21_row(weights: dict[str, float]) -> np.ndarray:
    """A crema-d-21 probability row: given labels get their weights, the rest share what is left."""
    rest = (1 - sum(weights.values())) / (len(CREMA21) - len(weights))
    return np.array([weights.get(lab, rest) for lab in CREMA21.labels])


def test_composite_reports_marginal_argmax_not_flat_argmax() -> None:
    # flat argmax is ANG_HI, but SAD holds 0.5 + 2 * rest > ANG's 0.3 + 3 * rest
    row = _crema21_row({"ANG_HI": 0.3, "SAD_HI": 0.25, "SAD_LO": 0.25})
    names, marginal = marginalise(row[None], CREMA21, by="emotion")
    assert names[marginal.argmax()] == "SAD"
    assert CREMA21.labels[row.argmax()] == "ANG_HI"
    m = classification_metrics([CREMA21.id("SAD_LO")], row[None], CREMA21)
    assert m["accuracy"] == 0.0
    assert m["emotion_accuracy"] == 1.0  # SAD, from the marginal
    assert m["intensity_accuracy"] == 0.0  # HI (0.55 + ...) beats LO (0.25 + ...)
    for key in ("emotion_uar", "emotion_macro_f1", "intensity_uar", "intensity_macro_f1"):
        assert key in m
    json.dumps(m, allow_nan=False)


def test_composite_uar_over_emotions() -> None:
    labels = ["ANG_HI", "ANG_LO", "ANG_MD", "NEU_XX"]
    preds = ["ANG_LO", "ANG_HI", "NEU_XX", "NEU_XX"]  # emotions: ANG, ANG, NEU, NEU
    probs = _probs_for([CREMA21.id(p) for p in preds], len(CREMA21))
    m = classification_metrics([CREMA21.id(t) for t in labels], probs, CREMA21)
    assert m["accuracy"] == pytest.approx(1 / 4)
    assert m["emotion_accuracy"] == pytest.approx(3 / 4)
    assert m["emotion_uar"] == pytest.approx((2 / 3 + 1) / 2)
    # intensity: true HI, LO, MD, XX; predicted LO, HI, XX, XX
    assert m["intensity_accuracy"] == pytest.approx(1 / 4)
    assert m["intensity_uar"] == pytest.approx(1 / 4)


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(BadLabel, match="crema-d-21"):
        classification_metrics([0], np.full((1, 6), 1 / 6), CREMA21)
    with pytest.raises(BadLabel, match="label id 6"):
        classification_metrics([6], np.full((1, 6), 1 / 6), CREMA6)
    with pytest.raises(EmovoxError, match="empty"):
        classification_metrics([], np.zeros((0, 6)), CREMA6)


def test_majority_baseline_and_ties() -> None:
    assert majority_baseline([2, 2, 1, 0, 2]) == (2, pytest.approx(0.6))
    assert majority_baseline([1, 0, 1, 0]) == (0, 0.5)
    with pytest.raises(EmovoxError):
        majority_baseline([])


def test_confusion_and_row_normalise() -> None:
    cm = confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 0, 0]])
    np.testing.assert_allclose(row_normalise(cm), [[0.5, 0.5, 0], [1 / 3, 2 / 3, 0], [0, 0, 0]])


def test_ece_zero_when_calibrated_and_large_when_overconfident() -> None:
    # 10 at confidence 0.7 with 7 right, 10 at 0.9 with 9 right
    probs = np.array([[0.7, 0.3]] * 10 + [[0.9, 0.1]] * 10)
    y = [0] * 7 + [1] * 3 + [0] * 9 + [1]
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)
    overconfident = np.array([[0.99, 0.01]] * 10)
    assert expected_calibration_error(overconfident, [0] * 5 + [1] * 5) == pytest.approx(0.49)


def test_reliability_bins_cover_unit_interval() -> None:
    probs = np.array([[0.7, 0.3]] * 4 + [[0.5, 0.5]] * 2 + [[0.0, 1.0]])
    bins = reliability_bins(probs, [0, 0, 0, 1, 0, 1, 1])
    assert len(bins) == 15
    assert bins[0]["bin_lo"] == 0.0 and bins[-1]["bin_hi"] == 1.0
    assert sum(b["count"] for b in bins) == 7
    full = [b for b in bins if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in full] == [(2, 0.5), (4, 0.75), (1, 1.0)]
    assert full[1]["confidence"] == pytest.approx(0.7)
    assert bins[1]["confidence"] is None


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_fit_temperature_recovers_known_temperature(t_true: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(20_000, 5))
    p = softmax(logits, t_true)
    y = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    assert fit_temperature(logits, y) == pytest.approx(t_true, rel=0.1)


def test_fit_temperature_empty_and_softmax() -> None:
    assert fit_temperature(np.zeros((0, 3)), []) == 1.0
    p = softmax(np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.25, 0.75]])
    np.testing.assert_allclose(softmax(np.array([[0.0, np.log(9.0)]]), 2.0), [[0.25, 0.75]])
    with pytest.raises(EmovoxError, match="temperature"):
        softmax(np.zeros((1, 2)), 0.0)


def test_compare_table_renders_markdown() -> None:
    table = compare_table({"flat": {"accuracy": 0.5, "uar": 0.25}, "multi-task": {"accuracy": 0.625}})
    lines = table.strip().splitlines()
    assert lines[0] == "| model | accuracy | uar | macro_f1 |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2] == "| flat | 0.500 | 0.250 | — |"
    assert lines[3] == "| multi-task | 0.625 | — | — |"
