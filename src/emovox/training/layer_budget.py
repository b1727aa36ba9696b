"""Choosing ``model.layer_budget`` on validation speakers, from cached features.

The feature cache holds every layer's utterance statistics of each clip, encoded once by the whole
encoder, so a probe like ``configs/ravdess-whisper.yaml``'s (stats of the layers read, standardised,
a class-balanced ridge with ``l2 * N``) is fitted for each budget ``k`` in seconds, on
speaker-grouped folds. :func:`choose_budget` returns each budget's mean UAR and the smallest ``k``
whose UAR is within ``tolerance`` of the best: the speed bought at a stated accuracy cost. Confirm
the choice on speakers that took no part in it (``benchmarks/layer_budget.py`` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..models.layer_budget import budget_features


@dataclass
class BudgetChoice:
    """Mean validation UAR per budget (layers kept), and the budget chosen."""

    uar: dict[int, float]
    per_fold: dict[int, list[float]]
    chosen: int
    best: int
    tolerance: float


def ridge_uar(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_classes: int,
              *, l2: float = 4.0) -> float:
    """UAR of the recipe's ridge probe (standardised features, one-vs-rest +-1 targets,
    class-balanced weights, ``alpha = l2 * N``) fitted on the train rows, on the test rows."""
    from sklearn.linear_model import Ridge

    from ..evaluation.metrics import uar_of

    mu, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    targets = -np.ones((len(y_train), n_classes))
    targets[np.arange(len(y_train)), y_train] = 1.0
    counts = np.bincount(y_train, minlength=n_classes).astype(float)
    weights = (len(y_train) / (n_classes * np.maximum(counts, 1)))[y_train]
    fit = Ridge(alpha=max(l2, 1e-8) * len(y_train)).fit((x_train - mu) / sd, targets, sample_weight=weights)
    pred = fit.predict((x_test - mu) / sd).argmax(axis=1)
    return float(uar_of(y_test, pred, n_classes)[0])


def choose_budget(stats: np.ndarray, labels: Sequence[int], folds: Sequence[np.ndarray], *,
                  budgets: Sequence[int] | None = None, tolerance: float = 0.01, l2: float = 4.0) -> BudgetChoice:
    """Each budget's mean UAR over ``folds`` (boolean test masks over the rows; the rest trains)
    and the smallest budget within ``tolerance`` of the best.

    Args:
        stats: Cached utterance statistics of the whole encoder, [N, 2, L + 2, H].
        labels: Integer labels of the rows.
        folds: One boolean mask per fold: the rows it tests (group them by speaker).
        budgets: Layer counts to try (default 1..L; L is the whole encoder, read as it is).
        tolerance: The UAR the chosen budget may lose against the best one.
    """
    stats = np.asarray(stats, dtype=np.float64)
    y = np.asarray(labels)
    n_layers = stats.shape[2] - 2
    n_classes = int(y.max()) + 1
    budgets = list(budgets or range(1, n_layers + 1))
    per_fold: dict[int, list[float]] = {}
    for k in budgets:
        x = (stats if k >= n_layers else budget_features(stats, k)).reshape(len(y), -1)
        per_fold[k] = [ridge_uar(x[~test], y[~test], x[test], y[test], n_classes, l2=l2) for test in folds]
    uar = {k: float(np.mean(v)) for k, v in per_fold.items()}
    best = max(uar, key=lambda k: (uar[k], -k))
    chosen = min(k for k in budgets if uar[k] >= uar[best] - tolerance)
    return BudgetChoice(uar=uar, per_fold=per_fold, chosen=chosen, best=best, tolerance=tolerance)
