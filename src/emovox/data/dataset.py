"""Datasets over a manifest (the only place that does training I/O), the padding collator and the
length-grouped sampler."""
from __future__ import annotations

import hashlib
from pathlib import Path

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from .audio import SAMPLE_RATE, load_audio
from .augment import seeded
from ..labels import LabelScheme


def decode_all(paths: Sequence[str], *, max_seconds: float, workers: int | None = None) -> list[np.ndarray]:
    """Decode clips once, in parallel threads (libsndfile and soxr release the GIL)."""
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: load_audio(p, max_seconds=max_seconds, check=False), paths))


class AudioDataset(Dataset):
    """Clips of one split as model inputs (float32, time last) with integer labels.

    Args:
        df: Manifest rows (path, label, duration).
        scheme: Label scheme giving the ids.
        featurize: Wave -> model input, exactly as inference does it (the backbone's
            ``featurize`` bound to its feature extractor); None keeps the wave.
        input_name: The key the model takes the input under.
        max_seconds: Clips are cut to this length.
        augment: Training-only wave -> wave transform, seeded per (seed, epoch, index).
        cache: Decode every clip up front and keep it in memory.
        seed: Augmentation seed.
        seed_by_path: Seed augmentation per (seed, epoch, resolved path) instead of (seed, epoch,
            index), so a clip gets the same augmentation in every dataset that holds it (cached
            augmented features depend on that).
    """

    def __init__(self, df: pd.DataFrame, scheme: LabelScheme,
                 featurize: Callable[[np.ndarray], np.ndarray] | None = None, *, max_seconds: float,
                 augment: Callable[[np.ndarray], np.ndarray] | None = None, cache: bool = False, seed: int = 0,
                 input_name: str = "input_values", seed_by_path: bool = False):
        self.paths = list(df["path"])
        self.clip_seeds = [_path_seed(p) for p in self.paths] if seed_by_path else None
        # a composite label (ANG_HI) trains an emotion-only scheme (crema-d-6) as its emotion (ANG)
        self.labels = [scheme.id(scheme.coerce(lab)) for lab in df["label"]]
        durations = pd.to_numeric(df["duration"], errors="coerce").fillna(max_seconds).to_numpy()
        self.lengths = [int(min(d, max_seconds) * SAMPLE_RATE) for d in durations]
        self.featurize = featurize
        self.input_name = input_name
        self.max_seconds = max_seconds
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.waves = decode_all(self.paths, max_seconds=max_seconds) if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def wave(self, i: int) -> np.ndarray:
        if self.waves is not None:
            return self.waves[i]
        return load_audio(self.paths[i], max_seconds=self.max_seconds, check=False)

    def __getitem__(self, i: int) -> dict:
        wave = self.wave(i)
        if self.augment is not None:
            with seeded(self.seed, self.epoch, i if self.clip_seeds is None else self.clip_seeds[i]):
                wave = self.augment(wave)
            wave = wave[: int(self.max_seconds * SAMPLE_RATE)]
        values = self.featurize(wave) if self.featurize is not None else wave
        return {self.input_name: np.asarray(values, dtype=np.float32), "labels": self.labels[i]}


def _path_seed(path: str) -> int:
    """A stable 32-bit number for a clip's resolved path."""
    return int(hashlib.blake2b(str(Path(path).resolve()).encode(), digest_size=4).hexdigest(), 16)


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


class PadCollator:
    """Pads a batch to its longest clip, with an attention mask when the model takes one."""

    def __init__(self, *, attention_mask: bool = True, pad_to_multiple_of: int | None = None,
                 input_name: str = "input_values"):
        self.attention_mask = attention_mask
        self.multiple = pad_to_multiple_of
        self.input_name = input_name

    def __call__(self, items: list[dict]) -> dict:
        values, mask = pad_batch([it[self.input_name] for it in items], self.multiple)
        batch = {self.input_name: torch.from_numpy(values)}
        if self.attention_mask:
            batch["attention_mask"] = torch.from_numpy(mask)
        if "labels" in items[0]:
            batch["labels"] = torch.as_tensor([it["labels"] for it in items], dtype=torch.long)
        return batch


class LengthGroupedSampler(Sampler[int]):
    """Shuffles clips into batches of similar length using lengths from the manifest (no decoding).

    With ``weights`` clips are drawn with replacement in proportion to them (balanced sampling).
    Mega-batches of ``mega * batch_size`` random clips are sorted by length, cut into batches, and
    the batches shuffled; the order depends only on (seed, epoch), so a resumed run sees the same
    batches. ``set_epoch`` also tells the dataset the epoch for its augmentation seed.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 0, mega: int = 50,
                 group: bool = True, dataset: AudioDataset | None = None, weights: Sequence[float] | None = None):
        self.lengths = np.asarray(lengths)
        self.weights = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.batch_size = batch_size
        self.seed = seed
        self.mega = mega
        self.group = group
        self.dataset = dataset
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is None:
            perm = rng.permutation(len(self.lengths))
        else:  # balanced sampling: an epoch's worth of clips drawn with class-balancing weights
            perm = rng.choice(len(self.lengths), size=len(self.lengths), replace=True, p=self.weights)
        if not self.group:
            return iter(perm.tolist())
        size = self.mega * self.batch_size
        batches = []
        for start in range(0, len(perm), size):
            chunk = perm[start:start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        order = rng.permutation(len(batches))
        return iter(np.concatenate([batches[i] for i in order]).tolist() if batches else [])
