"""Abstaining when unsure: the accuracy-coverage curve of the top-1 confidence, its area (AURC)
and the confidence threshold that reaches a target accuracy.

A model that answers only when its top score is at least P covers the clips with score >= P; the
curve lists, for every distinct score taken as P (most confident first), the coverage and the
accuracy on what is covered. ``predict --min-confidence P`` applies the threshold.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BadConfig


def coverage_curve(confidence: Sequence[float], correct: Sequence[bool]) -> list[dict]:
    """One point per distinct confidence, highest first: ``threshold`` (answer when score >= it),
    ``coverage`` (share answered), ``accuracy`` (on the answered), ``n`` (answered)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    conf, hit = conf[order], hit[order]
    hits = np.cumsum(hit)
    last = np.r_[np.flatnonzero(np.diff(conf) != 0), len(conf) - 1] if len(conf) else np.array([], int)
    return [{"threshold": float(conf[i]), "coverage": (i + 1) / len(conf), "accuracy": float(hits[i] / (i + 1)),
             "n": int(i + 1)} for i in last]


def aurc(confidence: Sequence[float], correct: Sequence[bool]) -> dict:
    """Area under the risk-coverage curve (risk = 1 - accuracy; lower is better), the same for
    an oracle that ranks every mistake last (``optimal``), and their difference (``excess``).

    Ties in confidence are answered together (a threshold cannot split them), so the risk at a
    tied clip is the risk of its whole tie group.
    """
    points = coverage_curve(confidence, correct)
    if not points:
        return {"aurc": 0.0, "optimal": 0.0, "excess": 0.0}
    n = points[-1]["n"]
    risk, start = 0.0, 0
    for p in points:  # each clip of a tie group contributes the group's risk
        risk += (p["n"] - start) * (1.0 - p["accuracy"])
        start = p["n"]
    errors = n - int(round(points[-1]["accuracy"] * n))
    k = np.arange(1, n + 1)
    optimal = float(np.mean(np.maximum(0, k - (n - errors)) / k))
    return {"aurc": risk / n, "optimal": optimal, "excess": risk / n - optimal}


def check_target(target: float) -> float:
    """``target`` when it is an accuracy a threshold can aim at.

    Raises:
        BadConfig: outside (0, 1].
    """
    if not 0 < target <= 1:
        raise BadConfig(f"--target-accuracy must be in (0, 1], got {target!r}")
    return target


def threshold_for_accuracy(confidence: Sequence[float], correct: Sequence[bool], target: float) -> dict:
    """The lowest confidence threshold whose answered clips reach ``target`` accuracy (the most
    coverage that does), with its coverage and accuracy; ``min_confidence`` None when no
    threshold reaches it.

    Raises:
        BadConfig: ``target`` outside (0, 1].
    """
    check_target(target)
    ok = [p for p in coverage_curve(confidence, correct) if p["accuracy"] >= target - 1e-12]
    if not ok:
        return {"target_accuracy": target, "min_confidence": None, "coverage": 0.0, "accuracy": None}
    best = max(ok, key=lambda p: p["coverage"])
    return {"target_accuracy": target, "min_confidence": best["threshold"], "coverage": best["coverage"],
            "accuracy": best["accuracy"]}
