"""Zero-padding featurized clips into a batch with its mask: numpy only, shared by training's
collator and inference (which the runtime install runs without torch or pandas)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pad_batch(items: Sequence[np.ndarray], multiple: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad arrays along their last (time) axis to the longest one: (batch [B, ..., T] float32,
    mask [B, T] int64). Waves are [T]; log-mel features [mels, T]."""
    n = max(v.shape[-1] for v in items)
    if multiple:
        n = -(-n // multiple) * multiple
    x = np.zeros((len(items), *items[0].shape[:-1], n), dtype=np.float32)
    mask = np.zeros((len(items), n), dtype=np.int64)
    for k, v in enumerate(items):
        x[k, ..., : v.shape[-1]] = v
        mask[k, : v.shape[-1]] = 1
    return x, mask
