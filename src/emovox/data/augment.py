"""Training-time augmentation with audiomentations' transforms, deterministic per (seed, epoch, clip).

:class:`Augmenter` applies audiomentations' ``AddGaussianNoise``, ``PitchShift`` and ``TimeStretch``
(in that order, each with its own probability; pitch and stretch by the ``signalsmith_stretch`` method,
audiomentations' default and ~100x faster than librosa's phase vocoder for pitch) and draws every random number from generators of its own, seeded per
call. It makes exactly the draws ``Compose([...])`` makes from Python's and NumPy's global RNGs
after ``random.seed(s); np.random.seed(s)`` (a test checks the outputs are equal), without touching
those global RNGs: so clips can be augmented in a background thread ahead of the training step while
the model's forward pass draws its SpecAugment masks from NumPy's global RNG, and the result
depends only on the key, not on threads, workers or resume.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from .audio import SAMPLE_RATE
from ..config import AugmentConfig


def key_seed(*key: int) -> int:
    """The 32-bit seed for one augmentation call, from its key (seed, epoch, clip)."""
    return int(np.random.SeedSequence([abs(int(k)) for k in key]).generate_state(1)[0])


class Augmenter:
    """Noise, pitch shift and time stretch at ``augment.*``'s probabilities, seeded per call.

    ``augmenter(wave, *key)`` returns the augmented float32 wave for that key; the same key gives
    the same wave in any thread or process. Without a key it draws from the global RNGs, as
    ``Compose`` does (so ``with seeded(*key): augmenter(wave)`` equals ``augmenter(wave, *key)``).
    """

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    @property
    def steps(self) -> list[str]:
        c = self.cfg
        return [name for name, p in (("noise", c.noise_p), ("pitch", c.pitch_p), ("stretch", c.stretch_p)) if p > 0]

    def __call__(self, wave: np.ndarray, *key: int) -> np.ndarray:
        if key:
            seed = key_seed(*key)
            draw, normal = random.Random(seed), np.random.RandomState(seed)  # as random.seed / np.random.seed
        else:
            draw, normal = random, np.random
        c = self.cfg
        x = np.asarray(wave, dtype=np.float32)
        draw.random()  # Compose(p=1.0) draws whether to apply at all
        for name in self.steps:
            if name == "noise":
                if draw.random() < c.noise_p:
                    amplitude = draw.uniform(c.noise_min_amplitude, c.noise_max_amplitude)
                    if len(x):
                        x = x + amplitude * normal.randn(*x.shape).astype(np.float32)
            elif name == "pitch":
                if draw.random() < c.pitch_p:
                    semitones = draw.uniform(-c.pitch_semitones, c.pitch_semitones)
                    if len(x):
                        x = _apply(_pitch(c), x, num_semitones=semitones)
            elif draw.random() < c.stretch_p:
                rate = draw.uniform(c.stretch_min_rate, c.stretch_max_rate)
                if len(x):
                    x = _apply(_stretch(c), x, rate=rate)
        return x.astype(np.float32, copy=False)


def build_augment(cfg: AugmentConfig) -> Augmenter | None:
    """The augmentation of ``augment.*``, or None when it is disabled or every probability is 0."""
    if not cfg.enabled:
        return None
    aug = Augmenter(cfg)
    return aug if aug.steps else None


def reference_pipeline(cfg: AugmentConfig):
    """The same augmentation as a plain ``audiomentations.Compose`` (global RNGs): what a training
    script written the plain way runs (the benchmark's baseline; tests compare the two)."""
    from audiomentations import AddGaussianNoise, Compose

    steps = []
    if cfg.noise_p > 0:
        steps.append(AddGaussianNoise(min_amplitude=cfg.noise_min_amplitude, max_amplitude=cfg.noise_max_amplitude,
                                      p=cfg.noise_p))
    if cfg.pitch_p > 0:
        steps.append(_pitch(cfg))
    if cfg.stretch_p > 0:
        steps.append(_stretch(cfg))
    return Compose(steps)


def _pitch(cfg: AugmentConfig):
    from audiomentations import PitchShift

    return PitchShift(min_semitones=-cfg.pitch_semitones, max_semitones=cfg.pitch_semitones, p=cfg.pitch_p,
                      **_fast(PitchShift))


def _stretch(cfg: AugmentConfig):
    from audiomentations import TimeStretch

    return TimeStretch(min_rate=cfg.stretch_min_rate, max_rate=cfg.stretch_max_rate, leave_length_unchanged=False,
                       p=cfg.stretch_p, **_fast(TimeStretch))


def _fast(cls) -> dict:
    """``method="signalsmith_stretch"`` where the release has it (the default since it came): on a
    3 s clip ~18 ms against ~1.9 s for librosa's phase-vocoder pitch shift, which older releases
    used by default and which then dominated a training step."""
    import inspect

    return {"method": "signalsmith_stretch"} if "method" in inspect.signature(cls.__init__).parameters else {}


def _apply(transform, wave: np.ndarray, **parameters) -> np.ndarray:
    """One audiomentations transform with the parameters given (a fresh instance per call, so
    threads share no state)."""
    transform.parameters.update(should_apply=True, **parameters)
    return transform.apply(wave, SAMPLE_RATE)


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    """Seed Python's and NumPy's global RNGs for one call, then restore them (the plain
    ``Compose``'s way; emovox's :class:`Augmenter` needs no global state)."""
    seed = key_seed(*key)
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
