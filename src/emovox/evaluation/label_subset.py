"""Scoring a corpus whose labels are a subset of the model's (cross-corpus evaluation).

A RAVDESS model (8 emotions) scored on a corpus with 4 of them would otherwise spend probability on
labels the corpus never has (calm, surprised, ...), and every such answer is an error the corpus
cannot even express. As EmoBox's cross-corpus track does, the model's probabilities are restricted
to the labels the manifest has and renormalised; the report names the labels left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..labels import LabelScheme


@dataclass(frozen=True)
class LabelSubset:
    """The model's labels kept (in the model's order) and the ones left out."""

    scheme: LabelScheme
    index: tuple[int, ...]
    left_out: tuple[str, ...]

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities over the kept labels, renormalised to sum to one per row."""
        kept = probs[:, list(self.index)]
        return kept / np.clip(kept.sum(axis=1, keepdims=True), 1e-12, None)


def label_subset(scheme: LabelScheme, present: Iterable[str]) -> LabelSubset | None:
    """The subset of ``scheme`` that ``present`` labels cover, or None when they cover it all."""
    present = set(present)
    keep = [i for i, lab in enumerate(scheme.labels) if lab in present]
    if len(keep) == len(scheme.labels) or not keep:
        return None
    labels = tuple(scheme.labels[i] for i in keep)
    sub = LabelScheme(f"{scheme.name} restricted to {len(labels)}", labels, scheme.composite)
    return LabelSubset(sub, tuple(keep), tuple(lab for lab in scheme.labels if lab not in present))
