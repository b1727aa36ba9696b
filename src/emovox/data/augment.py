"""Training-time augmentation with audiomentations, deterministic per (seed, epoch, clip)."""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from .audio import SAMPLE_RATE
from ..config import AugmentConfig


def build_augment(cfg: AugmentConfig) -> Callable[[np.ndarray], np.ndarray] | None:
    """An audiomentations pipeline (noise, pitch shift, time stretch) or None when disabled."""
    if not cfg.enabled:
        return None
    from audiomentations import AddGaussianNoise, Compose, PitchShift, TimeStretch

    steps = []
    if cfg.noise_p > 0:
        steps.append(AddGaussianNoise(min_amplitude=cfg.noise_min_amplitude,
                                      max_amplitude=cfg.noise_max_amplitude, p=cfg.noise_p))
    if cfg.pitch_p > 0:
        steps.append(PitchShift(min_semitones=-cfg.pitch_semitones, max_semitones=cfg.pitch_semitones,
                                p=cfg.pitch_p))
    if cfg.stretch_p > 0:
        steps.append(TimeStretch(min_rate=cfg.stretch_min_rate, max_rate=cfg.stretch_max_rate,
                                 leave_length_unchanged=False, p=cfg.stretch_p))
    if not steps:
        return None
    pipeline = Compose(steps)
    return lambda wave: pipeline(samples=wave, sample_rate=SAMPLE_RATE).astype(np.float32, copy=False)


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    """Seed Python's and NumPy's global RNGs (which audiomentations draws from) for one call,
    then restore them, so augmentation depends only on ``key`` — not on worker count or resume."""
    seed = int(np.random.SeedSequence([abs(int(k)) for k in key]).generate_state(1)[0])
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
