"""Datasets over a manifest (the only place that does training I/O), the padding collator and the
length-grouped sampler."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from .audio import SAMPLE_RATE, load_audio
from .augment import Augmenter
from .padding import pad_batch  # noqa: F401 - re-exported: it lived here
from ..errors import BadConfig
from ..labels import LabelScheme

# Debugging and tests: a folder where each training process appends the clips it loads
# (rank, epoch, index, path), one JSON line each, to rank-R.jsonl.
TRACE_ENV = "EMOVOX_TRACE_CLIPS"


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
        augment: Training-only augmentation (:class:`~emovox.data.augment.Augmenter`), called as
            ``augment(wave, seed, epoch, index)``: seeded per call with generators of its own, so
            it may run in the background thread (``prefetch``) or in loader workers.
        cache: Decode every clip up front and keep it in memory.
        seed: Augmentation seed.
        seed_by_path: Seed augmentation per (seed, epoch, resolved path) instead of (seed, epoch,
            index), so a clip gets the same augmentation in every dataset that holds it (cached
            augmented features depend on that).
        prefetch: Items prepared ahead (decoded, augmented, featurized) in one background thread
            while the model computes, in the order ``plan`` announces (the length-grouped sampler
            does); 0 prepares each item when asked. Items are the same either way: one thread
            prepares all of them, and augmentation is seeded per (seed, epoch, index) and draws
            from no global RNG (the model's forward pass may draw from NumPy's meanwhile).
    """

    def __init__(self, df: pd.DataFrame, scheme: LabelScheme,
                 featurize: Callable[[np.ndarray], np.ndarray] | None = None, *, max_seconds: float,
                 augment: Augmenter | None = None, cache: bool = False, seed: int = 0,
                 input_name: str = "input_values", seed_by_path: bool = False, prefetch: int = 0):
        self.paths = list(df["path"])
        self.clip_seeds = [path_seed(p) for p in self.paths] if seed_by_path else None
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
        self.trace: tuple[str, int] | None = None  # (folder, rank) while TRACE_ENV asks for it
        self.waves = decode_all(self.paths, max_seconds=max_seconds) if cache else None
        self.prefetch = max(0, int(prefetch))
        self._order: list[int] = []  # the announced order, its positions, the next position to queue
        self._where: dict[int, int] = {}
        self._next = 0
        self._ahead: deque[tuple[int, Future]] = deque()  # (position, future), oldest first
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict:  # a loader worker gets no thread pool (workers prefetch themselves)
        state = dict(self.__dict__)
        state.update(_order=[], _where={}, _next=0, _ahead=deque(), _pool=None, _lock=None, prefetch=0)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def plan(self, order: Sequence[int]) -> None:
        """Announce the order items will be asked for, so ``prefetch`` of them are prepared ahead
        (with the epoch set now, as the sampler sets it before announcing)."""
        if not self.prefetch:
            return
        with self._lock:
            self._drop(len(self._order) + 1)
            self._order = [int(i) for i in order]
            self._where = {i: k for k, i in enumerate(self._order)}
            self._next = 0
            self._fill()

    def _drop(self, before: int) -> None:
        while self._ahead and self._ahead[0][0] < before:
            self._ahead.popleft()[1].cancel()

    def _fill(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emovox-prefetch")
        while len(self._ahead) < self.prefetch and self._next < len(self._order):
            k = self._next
            self._ahead.append((k, self._pool.submit(self.item, self._order[k], self.epoch)))
            self._next += 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def wave(self, i: int) -> np.ndarray:
        if self.waves is not None:
            return self.waves[i]
        return load_audio(self.paths[i], max_seconds=self.max_seconds, check=False)

    def trace_loads(self, rank: int) -> None:
        """List every clip this process loads in ``$EMOVOX_TRACE_CLIPS/rank-R.jsonl`` when that is set."""
        folder = os.environ.get(TRACE_ENV)
        self.trace = (folder, int(rank)) if folder else None

    def __getitem__(self, i: int) -> dict:
        if self.trace is not None:
            folder, rank = self.trace
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"rank-{rank}.jsonl"), "a") as f:
                f.write(json.dumps({"rank": rank, "epoch": self.epoch, "index": int(i), "path": self.paths[i]}) + "\n")
        if not self.prefetch or self._pool is None:
            return self.item(i)
        with self._lock:
            k = self._where.get(int(i))
            if k is not None and k >= (self._ahead[0][0] if self._ahead else self._next):
                self._drop(k)  # positions before k were skipped (a resumed run skips its done batches)
                if self._ahead and self._ahead[0][0] == k:
                    fut = self._ahead.popleft()[1]
                else:  # beyond what is queued: prepare it, then queue from the item after it
                    self._drop(len(self._order) + 1)
                    self._next = k + 1
                    fut = self._pool.submit(self.item, i, self.epoch)
            else:  # not in the announced order: prepared now, still in the one background thread
                fut = self._pool.submit(self.item, i, self.epoch)
            self._fill()
        return fut.result()

    def item(self, i: int, epoch: int | None = None) -> dict:
        """Item ``i`` prepared now, in the calling thread: the wave, augmented (seeded by
        (seed, epoch, i); the current epoch unless given), as model input."""
        wave = self.wave(i)
        if self.augment is not None:
            key = i if self.clip_seeds is None else self.clip_seeds[i]
            wave = self.augment(wave, self.seed, self.epoch if epoch is None else epoch, key)
            wave = wave[: int(self.max_seconds * SAMPLE_RATE)]
        values = self.featurize(wave) if self.featurize is not None else wave
        return {self.input_name: np.asarray(values, dtype=np.float32), "labels": self.labels[i]}


def path_seed(path: str) -> int:
    """A stable 32-bit number for a clip's resolved path."""
    return int(hashlib.blake2b(str(Path(path).resolve()).encode(), digest_size=4).hexdigest(), 16)


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


class LengthGroupedSampler(Sampler[list[int]]):
    """Batches of clips of similar length, from lengths in the manifest (no decoding), and one
    process's share of them when training data-parallel.

    A batch sampler (``DataLoader(batch_sampler=...)``). Each epoch, every rank builds the same
    *global* batches of ``batch_size * num_replicas`` clips from a permutation seeded by (seed,
    epoch): mega-batches of ``mega`` global batches are sorted by length and cut, and the global
    batches shuffled. Rank r takes items r, r + num_replicas, ... of each (lengths stay alike
    across ranks), so the ranks' shares are disjoint, cover the epoch exactly once, and every rank
    has the same number of steps; one process with ``batch_size * N`` sees the same global batches
    as N processes with ``batch_size``. A last global batch with fewer clips than ranks joins the
    one before it (a rank's batch is then one clip larger); ``drop_last`` drops it instead.
    With ``weights`` clips are drawn with replacement in proportion to them (balanced sampling).
    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    ``set_epoch`` also tells the dataset the epoch for its augmentation seed.

    Raises:
        BadConfig: fewer clips than processes, or a rank outside ``num_replicas``.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 0, mega: int = 50,
                 group: bool = True, dataset: AudioDataset | None = None, weights: Sequence[float] | None = None,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = False):
        if not 0 <= rank < num_replicas:
            raise BadConfig(f"rank {rank} is outside 0..{num_replicas - 1}")
        if len(lengths) < num_replicas:
            raise BadConfig(f"{len(lengths)} training clip(s) cannot feed {num_replicas} processes; "
                            "use fewer processes or more data")
        self.lengths = np.asarray(lengths)
        self.weights = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.batch_size = batch_size
        self.seed = seed
        self.mega = mega
        self.group = group
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size * self.num_replicas)
        return full + (1 if rest >= self.num_replicas and not self.drop_last else 0) or 1

    def global_batches(self) -> list[np.ndarray]:
        """This epoch's global batches (all ranks' clips of each step), in step order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is None:
            perm = rng.permutation(len(self.lengths))
        else:  # balanced sampling: an epoch's worth of clips drawn with class-balancing weights
            perm = rng.choice(len(self.lengths), size=len(self.lengths), replace=True, p=self.weights)
        size = self.batch_size * self.num_replicas
        batches = []
        for start in range(0, len(perm), self.mega * size):
            chunk = perm[start:start + self.mega * size]
            if self.group:
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        if self.group:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        short = [k for k, b in enumerate(batches) if len(b) < size]
        if short and (self.drop_last or len(batches[short[0]]) < self.num_replicas) and len(batches) > 1:
            k = short[0]
            tail = batches.pop(k)
            if not self.drop_last:  # too few clips to give every rank one: join the neighbouring batch
                batches[k - 1] = np.concatenate([batches[k - 1], tail])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        mine = [batch[self.rank::self.num_replicas].tolist() for batch in self.global_batches()]
        if self.dataset is not None:  # the dataset prepares the next items while the model computes
            self.dataset.plan([i for batch in mine for i in batch])
        return iter(mine)
