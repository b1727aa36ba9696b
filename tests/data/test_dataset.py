"""The training dataset prepares clips ahead, in the sampler's order, in one background thread,
and gives exactly the items it gives without prefetching (augmentation included)."""
import threading

import numpy as np
from emovox.config import AugmentConfig
from emovox.data.augment import build_augment
from emovox.data.dataset import AudioDataset, LengthGroupedSampler
from emovox.labels import get_scheme
from emovox.data.manifest import load_manifest

S6 = get_scheme("crema-d-6")


def _dataset(tiny_manifest, prefetch: int, seen: list | None = None) -> AudioDataset:
    df = load_manifest(tiny_manifest)

    def featurize(wave: np.ndarray) -> np.ndarray:
        if seen is not None:
            seen.append(threading.current_thread().name)
        return wave * 2.0

    aug = build_augment(AugmentConfig(noise_p=1.0, pitch_p=0.0, stretch_p=1.0))
    return AudioDataset(df, S6, featurize, max_seconds=1.0, augment=aug, seed=3, prefetch=prefetch, cache=True)


def _epoch(ds: AudioDataset, epoch: int) -> list[dict]:
    sampler = LengthGroupedSampler(ds.lengths, 4, seed=1, dataset=ds, mega=2)
    sampler.set_epoch(epoch)
    return [ds[i] for batch in sampler for i in batch]


def test_prefetched_items_equal_items_prepared_on_request(tiny_manifest):
    plain, ahead = _dataset(tiny_manifest, 0), _dataset(tiny_manifest, 5)
    for epoch in (0, 1):
        a, b = _epoch(plain, epoch), _epoch(ahead, epoch)
        assert len(a) == len(b) == len(plain)
        for x, y in zip(a, b):
            assert x["labels"] == y["labels"]
            np.testing.assert_array_equal(x["input_values"], y["input_values"])
    # off the plan (an evaluation-style request) still gives the same item
    np.testing.assert_array_equal(ahead[2]["input_values"], plain[2]["input_values"])


def test_items_are_prepared_ahead_in_a_background_thread(tiny_manifest):
    seen: list[str] = []
    ds = _dataset(tiny_manifest, 3, seen)
    sampler = LengthGroupedSampler(ds.lengths, 4, seed=1, dataset=ds)
    order = [i for batch in sampler for i in batch]  # announces the order; nothing asked for yet
    for _, fut in list(ds._ahead):
        fut.result()
    assert len(seen) == 3 and all(name.startswith("emovox-prefetch") for name in seen)
    ds[order[0]]
    for _, fut in list(ds._ahead):
        fut.result()
    assert len(seen) == 4, "taking one item should queue exactly one more"
    assert threading.main_thread().name not in seen


def test_without_prefetch_nothing_runs_in_the_background(tiny_manifest):
    seen: list[str] = []
    ds = _dataset(tiny_manifest, 0, seen)
    sampler = LengthGroupedSampler(ds.lengths, 4, seed=1, dataset=ds)
    order = [i for batch in sampler for i in batch]
    assert seen == []
    ds[order[0]]
    assert seen == [threading.current_thread().name]


def test_workers_get_a_copy_without_a_thread_pool(tiny_manifest):
    import copy as copying

    ds = _dataset(tiny_manifest, 4)
    list(iter(LengthGroupedSampler(ds.lengths, 4, dataset=ds)))
    copy = copying.copy(ds)  # what a spawned worker receives (__getstate__)
    assert copy.prefetch == 0 and copy._pool is None and ds._pool is not None
    for _, queued in list(ds._ahead):  # the original's thread draws from the global RNG too: let it finish
        queued.result()
    np.testing.assert_array_equal(copy[1]["input_values"], _dataset(tiny_manifest, 0)[1]["input_values"])
