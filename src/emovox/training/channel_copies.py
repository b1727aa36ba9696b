"""Channel-degraded copies of training clips for the cached-feature path (``augment.channel_copies``).

Copy k of a clip is the clip through one stress condition of ``evaluation.conditions`` (the same
code ``emovox stress`` scores with), drawn per (seed, k, clip) from ``augment.channel_conditions``:

- a noise family (``white``, ``pink``, ``babble``) is mixed at an SNR drawn uniformly from
  ``augment.channel_snr_db`` (default 0-20 dB); babble is made from the clips of the *training*
  split only (never validation or test speakers), without the clip's own speaker;
- another family (``telephone``, ``gsm``, ``mp3``, ``reverb``, ...) is one of its default
  conditions, drawn uniformly;
- a full condition name (``babble-5dB``, ``reverb-0.6s``) is used as it is.

Each copy is encoded once and cached under its own key: the settings above, the seed, the copy
number and (with babble) a hash of the training clips the babble comes from. Validation and test
clips are never degraded, except that a refit on train + validation (``training.head_refit``)
fits on copies of the validation clips too, as it does with ``augment.feature_copies``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import AugmentConfig
from ..data.audio import load_audio
from ..data.dataset import path_seed
from ..errors import BadConfig
from ..evaluation.conditions import FAMILIES, Babble, Condition, condition

NOISE_FAMILIES = ("white", "pink", "babble")


def check_channel(cfg: AugmentConfig) -> tuple[list[str], tuple[float, float]]:
    """The validated ``channel_conditions`` and ``channel_snr_db``.

    Raises:
        BadConfig: an unknown condition, an empty list, or an SNR range that is not two numbers low <= high.
    """
    names = [str(n).strip() for n in (cfg.channel_conditions or []) if str(n).strip()]
    if not names:
        raise BadConfig("augment.channel_copies needs augment.channel_conditions (e.g. [babble, telephone, gsm])")
    for n in names:
        if n not in FAMILIES:
            condition(n)  # raises BadConfig naming the valid ones
    snr = cfg.channel_snr_db
    if not (isinstance(snr, (list, tuple)) and len(snr) == 2 and float(snr[0]) <= float(snr[1])):
        raise BadConfig(f"augment.channel_snr_db must be [low, high] in dB with low <= high (got {snr!r})")
    return names, (float(snr[0]), float(snr[1]))


def draw_condition(names: Sequence[str], snr_db: tuple[float, float], rng: np.random.Generator) -> Condition:
    """One condition from ``names`` (families or names), drawn with ``rng``."""
    name = names[int(rng.integers(len(names)))]
    if name in NOISE_FAMILIES:
        snr = float(rng.uniform(*snr_db))
        return Condition(f"{name}-{snr:.1f}dB", name, {"snr_db": snr})
    if name in FAMILIES:
        options = FAMILIES[name]
        return condition(options[int(rng.integers(len(options)))])
    return condition(name)


class ChannelAugment:
    """``augment(wave, seed, copy, key)`` as ``AudioDataset`` calls it (``key``: the clip's path
    seed): the wave through the condition drawn for (seed, copy, clip). ``speakers`` maps each
    clip's path seed to its speaker (kept out of its own babble)."""

    def __init__(self, names: Sequence[str], snr_db: tuple[float, float], babble: Babble | None,
                 speakers: dict[int, str]):
        self.names, self.snr_db, self.babble, self.speakers = list(names), snr_db, babble, speakers

    def drawn(self, seed: int, copy: int, key: int) -> tuple[Condition, np.random.Generator]:
        """The condition for (seed, copy, clip) and the generator that then degrades the clip."""
        rng = np.random.default_rng([abs(int(seed)), int(copy), int(key), 0xC4A7])
        return draw_condition(self.names, self.snr_db, rng), rng

    def __call__(self, wave: np.ndarray, seed: int, copy: int, key: int) -> np.ndarray:
        cond, rng = self.drawn(seed, copy, key)
        if not len(wave) or not np.any(wave):
            return np.asarray(wave, dtype=np.float32)  # digital silence: no SNR is defined, keep it
        return cond.apply(wave, rng=rng, babble=self.babble, exclude=self.speakers.get(int(key), ""))


def channel_augment(cfg: AugmentConfig, part: pd.DataFrame, pool: pd.DataFrame, *,
                    max_seconds: float) -> tuple[ChannelAugment, str]:
    """The augmentation for ``part``'s channel copies, babble taken from ``pool`` (the training
    split), and the cache-variant text that names it (without the copy number)."""
    names, snr = check_channel(cfg)
    babble, pool_hash = None, ""
    if any(condition_family(n) == "babble" for n in names):
        pool = pool.sort_values("path")
        babble = Babble([load_audio(p, max_seconds=max_seconds, check=False) for p in pool["path"]],
                        list(pool["speaker"].astype(str)))
        listing = "\n".join(f"{p}|{s}" for p, s in zip(pool["path"], pool["speaker"].astype(str)))
        pool_hash = hashlib.blake2b(listing.encode(), digest_size=8).hexdigest()
    speakers = {path_seed(p): str(s) for p, s in zip(part["path"], part["speaker"])}
    variant = json.dumps({"channel_conditions": names, "channel_snr_db": list(snr), "babble_pool": pool_hash},
                         sort_keys=True)
    return ChannelAugment(names, snr, babble, speakers), variant


def condition_family(name: str) -> str:
    """The family a ``channel_conditions`` entry belongs to."""
    return name if name in FAMILIES else condition(name).family
