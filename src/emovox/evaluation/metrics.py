"""Evaluation numbers: accuracy beside UAR and macro-F1, per-class scores, confusion, calibration.

Everything here works on class ids (positions in a :class:`~emovox.labels.LabelScheme`) and
probability rows, so the same code serves the Trainer's ``compute_metrics``, ``emovox evaluate``,
cross-validation and the eGeMAPS baseline. Returned dicts hold only Python scalars, lists and
dicts, so they go straight into ``metrics.json``.
"""
from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.special import softmax as _softmax
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    recall_score,
)

from ..errors import BadLabel, EmovoxError
from ..labels import LabelScheme

N_BINS = 15
# log-temperature search range: T in [0.05, 20] covers every sane over/under-confidence.
_LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Turn logits into probabilities along the last axis, after dividing by ``temperature``.

    Raises:
        EmovoxError: ``temperature`` is not positive.
    """
    if not temperature > 0:
        raise EmovoxError(f"temperature must be > 0, got {temperature!r}")
    return _softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def majority_baseline(y: Sequence[int]) -> tuple[int, float]:
    """The most frequent class in ``y`` and the accuracy of always predicting it on ``y``.

    Pass the training labels to get the class a trivial model would learn, or the evaluation
    labels to get the honest floor for that very set. Ties go to the smallest id.

    Raises:
        EmovoxError: ``y`` is empty.
    """
    y = np.asarray(y, dtype=np.int64)
    if y.size == 0:
        raise EmovoxError("cannot take a majority baseline of an empty label list")
    counts = np.bincount(y)
    top = int(np.argmax(counts))
    return top, float(counts[top] / y.size)


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Count matrix, rows = true class, columns = predicted class, every class id included."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def row_normalise(cm: np.ndarray) -> np.ndarray:
    """Divide each row by its total so the diagonal is per-class recall; empty rows stay zero."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def reliability_bins(probs: np.ndarray, y_true: Sequence[int], n_bins: int = N_BINS) -> list[dict]:
    """Group predictions by top-1 confidence into equal-width bins over [0, 1].

    Bins are ``(bin_lo, bin_hi]`` (the first also holds 0). Every bin is listed so a plot shows
    gaps; an empty bin has ``count`` 0 and ``confidence``/``accuracy`` None.

    Returns:
        One dict per bin: ``bin_lo``, ``bin_hi``, ``count``, ``confidence`` (mean top-1
        probability), ``accuracy`` (fraction whose top-1 class is the true one).
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = probs.max(axis=1) if probs.size else np.zeros(0)
    correct = (probs.argmax(axis=1) == y_true) if probs.size else np.zeros(0, dtype=bool)
    which = np.digitize(conf, edges[1:-1], right=True)
    rows = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        rows.append({
            "bin_lo": float(edges[b]),
            "bin_hi": float(edges[b + 1]),
            "count": count,
            "confidence": float(conf[mask].mean()) if count else None,
            "accuracy": float(correct[mask].mean()) if count else None,
        })
    return rows


def expected_calibration_error(
    probs: np.ndarray, y_true: Sequence[int], n_bins: int = N_BINS
) -> float:
    """Count-weighted mean gap between confidence and accuracy over :func:`reliability_bins`.

    0 means the top-1 probability can be read as the chance of being right; an empty input has
    ECE 0.
    """
    bins = reliability_bins(probs, y_true, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / n)


def fit_temperature(logits: np.ndarray, y_true: Sequence[int]) -> float:
    """Temperature scaling: the T > 0 that minimises the NLL of ``softmax(logits / T)``.

    Fit on validation logits, then divide test logits by T; argmax (so accuracy, UAR, F1) is
    unchanged, only confidence moves. The search is over log T, bounded to T in [0.05, 20].

    Returns:
        The fitted temperature; 1.0 when there is nothing to fit.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    if y_true.size == 0:
        return 1.0
    rows = np.arange(y_true.size)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, y_true].mean())

    result = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded")
    return float(np.exp(result.x))


def _summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, UAR and macro-F1 of id predictions.

    UAR (balanced accuracy) is macro recall over the classes present in ``y_true``: a class with
    no examples has no recall. Macro-F1 is over the classes present in ``y_true`` *or* predicted,
    so predicting a class that never occurs costs an F1 of 0 for that class rather than going
    unnoticed; classes neither present nor predicted are left out (they would add meaningless
    zeros that depend on the scheme's size, not on the model).
    """
    present = np.unique(y_true)
    seen = np.union1d(present, np.unique(y_pred))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=seen, average="macro", zero_division=0)),
    }


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support for every label in the scheme (zeros where undefined)."""
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(labels)), zero_division=0
    )
    return {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }


def _groups(scheme: LabelScheme, by: Literal["emotion", "intensity"]) -> tuple[tuple[str, ...], np.ndarray]:
    """Group names (emotions or intensities) and, per label id, the index of its group."""
    part = 0 if by == "emotion" else 1
    names = scheme.emotions if part == 0 else scheme.intensities
    return names, np.array([names.index(scheme.split(lab)[part]) for lab in scheme.labels])


def marginalise(
    probs: np.ndarray, scheme: LabelScheme, *, by: Literal["emotion", "intensity"]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Sum label probabilities per emotion (or per intensity) of a composite scheme.

    Returns:
        The group names (``scheme.emotions`` or ``scheme.intensities``) and an ``(n, groups)``
        array of marginal probabilities; its argmax is the predicted emotion/intensity.
    """
    names, group_of = _groups(scheme, by)
    onehot = np.eye(len(names))[group_of]
    return names, np.asarray(probs, dtype=np.float64) @ onehot


def _composite_metrics(y_true: np.ndarray, probs: np.ndarray, scheme: LabelScheme) -> dict:
    """``emotion_*`` and ``intensity_*`` accuracy, UAR and macro-F1 from marginal argmaxes.

    The predicted emotion is the argmax of the emotion marginal, not the emotion of the flat
    argmax label: with ANG_HI 0.3, SAD_HI 0.25, SAD_LO 0.25 the answer is SAD.
    """
    out: dict[str, float] = {}
    for by in ("emotion", "intensity"):
        _, group_of = _groups(scheme, by)
        _, marginal = marginalise(probs, scheme, by=by)
        for key, value in _summary(group_of[y_true], marginal.argmax(axis=1)).items():
            out[f"{by}_{key}"] = value
    return out


def _check_inputs(y_true: np.ndarray, probs: np.ndarray, scheme: LabelScheme) -> None:
    """Raise a named error when ids, probability rows and the scheme disagree."""
    if y_true.size == 0:
        raise EmovoxError("no examples to score: the evaluated set is empty")
    if probs.ndim != 2 or probs.shape != (y_true.size, len(scheme)):
        raise BadLabel(
            f"probabilities have shape {probs.shape} but {y_true.size} labels and scheme "
            f"{scheme.name!r} with {len(scheme)} classes need ({y_true.size}, {len(scheme)})"
        )
    bad = y_true[(y_true < 0) | (y_true >= len(scheme))]
    if bad.size:
        raise BadLabel(
            f"label id {int(bad[0])} is outside scheme {scheme.name!r}; valid ids: 0..{len(scheme) - 1}"
        )


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, scheme: LabelScheme, *, loss: float | None = None
) -> dict:
    """Every headline number for one evaluated set, JSON-ready.

    Args:
        y_true: True class ids.
        probs: ``(n, len(scheme))`` probabilities; the prediction is their argmax.
        scheme: The label scheme the ids refer to.
        loss: A loss computed elsewhere (e.g. by the Trainer); by default the mean
            cross-entropy of ``probs``.

    Returns:
        ``accuracy``, ``uar``, ``macro_f1`` (class sets as in :func:`_summary`), ``loss``, ``n``,
        ``majority_accuracy`` (always predicting the most frequent true class of *this* set — the
        floor any model must beat here), ``per_class`` (every scheme label), ``ece``; for
        composite schemes also ``emotion_*``/``intensity_*`` ``accuracy``, ``uar`` and
        ``macro_f1``, scored on the argmax of the marginal probabilities.

    Raises:
        EmovoxError: the set is empty.
        BadLabel: ids outside the scheme or probabilities of the wrong shape.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    _check_inputs(y_true, probs, scheme)
    y_pred = probs.argmax(axis=1)
    if loss is None:
        # float32 softmax rows miss 1 by ~1e-7, enough for sklearn to warn; argmax is unaffected
        rows = probs / probs.sum(axis=1, keepdims=True)
        loss = log_loss(y_true, rows, labels=np.arange(len(scheme)))
    out: dict = {
        **_summary(y_true, y_pred),
        "loss": float(loss),
        "n": int(y_true.size),
        "majority_accuracy": majority_baseline(y_true)[1],
        "per_class": _per_class(y_true, y_pred, scheme.labels),
        "ece": expected_calibration_error(probs, y_true),
    }
    if scheme.composite:
        out.update(_composite_metrics(y_true, probs, scheme))
    return out


def _cell(value: object) -> str:
    """Format one table cell: floats to 3 decimals, missing values as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    return str(value)


def compare_table(
    named_metrics: Mapping[str, Mapping], keys: Sequence[str] = ("accuracy", "uar", "macro_f1")
) -> str:
    """A markdown table with one row per named metrics dict and one column per key.

    Used to put flat vs multi-task, an ensemble vs its members, or the neural model vs the
    eGeMAPS baseline side by side. A key a dict lacks shows as "—".
    """
    lines = [
        "| " + " | ".join(["model", *keys]) + " |",
        "|" + "---|" * (len(keys) + 1),
    ]
    for name, metrics in named_metrics.items():
        lines.append("| " + " | ".join([name, *(_cell(metrics.get(k)) for k in keys)]) + " |")
    return "\n".join(lines) + "\n"


def uar_of(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """UAR of each row of ``y_true``/``y_pred`` (2-D: one resample per row; 1-D is one row): the
    mean recall over the classes present in that row, as :func:`classification_metrics` has it."""
    y_true, y_pred = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    recalls, present = [], []
    for c in range(n_classes):
        support = (y_true == c).sum(axis=1)
        hits = ((y_true == c) & (y_pred == c)).sum(axis=1)
        recalls.append(np.divide(hits, support, out=np.zeros(len(support)), where=support > 0))
        present.append(support > 0)
    return np.sum(recalls, axis=0) / np.maximum(np.sum(present, axis=0), 1)


def paired_uar_difference(y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], n_classes: int, *,
                          reps: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """UAR(a) - UAR(b) on the same clips and its percentile bootstrap interval (clips resampled
    together for a and b, so the interval reflects the change, not the spread of each).

    Returns:
        ``(difference, low, high)``.
    """
    y, a, b = (np.asarray(v, dtype=np.int64) for v in (y_true, pred_a, pred_b))
    diff = float(uar_of(y, a, n_classes)[0] - uar_of(y, b, n_classes)[0])
    idx = np.random.default_rng(seed).integers(0, len(y), size=(reps, len(y)))
    boot = uar_of(y[idx], a[idx], n_classes) - uar_of(y[idx], b[idx], n_classes)
    tail = (1.0 - level) / 2 * 100
    return diff, float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))
