"""Abstaining when unsure: a result row whose top score is under a threshold keeps its scores but
gets ``"label": null`` and ``"abstained": true`` (``predict``/``serve --min-confidence P``).

``emovox evaluate --split validation --target-accuracy A`` finds the P that reaches accuracy A."""
from __future__ import annotations

from typing import Iterable, Iterator

from ..errors import BadConfig


def check_min_confidence(p: float | None) -> float | None:
    """``p`` when it is a usable threshold (None: never abstain).

    Raises:
        BadConfig: outside [0, 1].
    """
    if p is not None and not 0.0 <= p <= 1.0:
        raise BadConfig(f"--min-confidence must be between 0 and 1 (a top score), got {p!r}")
    return p


def mark(row: dict, min_confidence: float | None) -> dict:
    """The row with ``abstained`` set (and no label when its score is under ``min_confidence``);
    error rows and rows without a score are returned as they are."""
    if min_confidence is None or "score" not in row or "error" in row:
        return row
    if row["score"] < min_confidence:
        return {**row, "label": None, "abstained": True}
    return {**row, "abstained": False}


def abstain(rows: Iterable[dict], min_confidence: float | None) -> Iterator[dict]:
    """:func:`mark` every row, lazily."""
    for row in rows:
        yield mark(row, min_confidence)
