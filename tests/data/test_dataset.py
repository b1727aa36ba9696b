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
    np.testing.assert_array_equal(copy[1]["input_values"], _dataset(tiny_manifest, 0)[1]["input_values"])


def test_augmenter_equals_the_plain_compose_and_leaves_global_rngs_alone():
    """The same transforms and probabilities as audiomentations' Compose seeded globally (so
    cached augmented copies stay valid), drawn from generators of its own."""
    import random

    from emovox.data.augment import Augmenter, reference_pipeline, seeded

    cfg = AugmentConfig()  # noise, pitch and stretch at p=0.5
    ref, aug = reference_pipeline(cfg), Augmenter(cfg)
    wave = (0.1 * np.random.default_rng(0).standard_normal(12000)).astype(np.float32)
    np.random.seed(123)
    random.seed(123)
    before = (np.random.get_state()[1].copy(), random.getstate())
    lengths = set()
    for k in range(12):
        with seeded(7, 1, k):
            expected = ref(samples=wave, sample_rate=16000)
        got = aug(wave, 7, 1, k)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        lengths.add(len(got))
    assert len(lengths) > 1, "time stretch should have changed some lengths"
    assert np.array_equal(np.random.get_state()[1], before[0]) and random.getstate() == before[1]
    np.testing.assert_array_equal(aug(wave, 7, 1, 3), aug(wave, 7, 1, 3))
    with seeded(7, 1, 3):  # keyless: the global RNGs, as Compose
        np.testing.assert_array_equal(aug(wave), aug(wave, 7, 1, 3))
    assert not np.array_equal(aug(wave, 8, 1, 3)[:1000], aug(wave, 7, 1, 3)[:1000])


def _run(tiny_manifest, seed: int) -> list[np.ndarray]:
    """Two epochs of augmented items prepared ahead in the background thread while this thread
    draws from NumPy's global RNG, as the model's SpecAugment masks do."""
    df = load_manifest(tiny_manifest)
    aug = build_augment(AugmentConfig())
    ds = AudioDataset(df, S6, None, max_seconds=1.0, augment=aug, seed=seed, prefetch=4, cache=True)
    out = []
    for epoch in (0, 1):
        sampler = LengthGroupedSampler(ds.lengths, 4, seed=seed, dataset=ds, mega=2)
        sampler.set_epoch(epoch)
        for batch in sampler:
            np.random.random(1000)  # the training thread's own draws
            out += [ds[i]["input_values"] for i in batch]
    return out


def test_augmented_prefetched_batches_repeat_for_a_seed_and_differ_for_another(tiny_manifest):
    a, b, c = _run(tiny_manifest, 3), _run(tiny_manifest, 3), _run(tiny_manifest, 4)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sum(len(x) != len(y) or not np.array_equal(x, y) for x, y in zip(a, c)) > len(a) // 2
