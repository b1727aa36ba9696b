"""The turn model (``speaker_turns``): where speakers take turns and k-means splits moods, the order
puts the voices back together; where the order says nothing, the clustering is kept as it was; with
``auto``, two voices too alike for the silhouette are counted as two when they take turns, and one
voice stays one; the forward-backward pass is exact."""
import itertools

import numpy as np

from emovox.inference import speaker_turns, speakers
from emovox.inference.kmeans import kmeans
from emovox.inference.speakers import cluster_speakers

SEEDS = range(20)


def _voices(seed, order, n=24, *, common=0.0, noise=0.15):
    """``n`` segments of two speakers, each a speaker direction plus one of 4 moods drawn at random
    (1.3 times as far apart as the voices) plus noise, L2-normalised; the speakers alternate, follow
    each other at random, or one speaker says everything (``"alone"``). ``common``: the length of a
    direction every segment shares (the recording, what makes voices alike in GE2E's space).
    Also the segments' emotion probabilities (0.85 on each one's mood)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=32)
    shared *= common / np.linalg.norm(shared)
    speaker = rng.normal(size=(2, 32))
    speaker /= np.linalg.norm(speaker, axis=1, keepdims=True)
    mood = rng.normal(size=(4, 32))
    mood *= 1.3 / np.linalg.norm(mood, axis=1, keepdims=True)
    who = {"alternate": np.arange(n) % 2, "alone": np.zeros(n, dtype=int)}.get(order, rng.integers(0, 2, n))
    what = rng.integers(0, 4, n)
    x = shared + speaker[who] + mood[what] + rng.normal(size=(n, 32)) * noise
    probs = np.full((n, 4), 0.05)
    probs[np.arange(n), what] = 0.85
    return x / np.linalg.norm(x, axis=1, keepdims=True), who, probs


def _wrong(ids, who):
    agree = np.mean([(i == ids[0]) == (w == who[0]) for i, w in zip(ids, who)])
    return min(agree, 1 - agree)


def _without_turns(x):
    y = speakers._reduced(speakers._centred(x), 2)  # what cluster_speakers splits, without the moods
    return y, kmeans(y, 2, n_init=10, seed=0)


def test_speakers_taking_turns_are_split_by_voice_where_kmeans_splits_moods():
    with_turns, alone = [], []
    for seed in SEEDS:
        x, who, _ = _voices(seed, "alternate")
        with_turns.append(_wrong(cluster_speakers(x, 2), who))
        alone.append(_wrong(_without_turns(x)[1], who))
    assert np.mean(alone) > 0.2, alone  # k-means alone splits the moods in many draws
    assert np.mean(with_turns) < 0.1 and np.mean(with_turns) < np.mean(alone) / 2, with_turns


def test_an_order_that_says_nothing_leaves_the_clustering_as_it_was():
    for seed in SEEDS:
        x, who, _ = _voices(seed, "random")
        y, ids = _without_turns(x)
        assert speaker_turns.turn_split(y, ids, 2) is None


def test_auto_counts_two_voices_taking_turns_that_the_silhouette_hears_as_one(monkeypatch):
    draws = [_voices(seed, "alternate", common=3.0, noise=0.3) for seed in range(10)]
    for x, who, probs in draws:
        assert _wrong(cluster_speakers(x, "auto", moods=probs), who) == 0
    monkeypatch.setattr(speakers, "turn_split", lambda *a, **kw: None)  # without the turn model: mostly one voice
    ones = [set(cluster_speakers(x, "auto", moods=probs)) == {"S1"} for x, _, probs in draws]
    assert sum(ones) >= 8, ones


def test_auto_keeps_one_voice_whole_in_most_recordings():
    counts = []
    for seed in range(20):
        x, _, probs = _voices(seed, "alone", common=3.0, noise=0.3)
        counts.append(len(set(cluster_speakers(x, "auto", moods=probs))))
    assert counts.count(1) >= 17, counts


def test_too_few_segments_are_left_alone():
    y = np.random.default_rng(0).normal(size=(4, 3))
    ids = np.array([0, 1, 0, 1])
    assert speaker_turns.turn_split(y, ids, 2) is None


def test_forward_backward_is_the_sum_over_every_path():
    rng = np.random.default_rng(3)
    n, k = 6, 2
    log_b = rng.normal(size=(n, k))
    trans = np.array([[0.2, 0.8], [0.6, 0.4]])
    first = np.array([0.3, 0.7])
    post, pairs, ll = speaker_turns._forward_backward(log_b, trans, first)
    paths = np.array(list(itertools.product(range(k), repeat=n)))
    weights = np.array([first[p[0]] * np.prod(trans[p[:-1], p[1:]]) * np.exp(log_b[np.arange(n), p].sum())
                        for p in paths])
    assert np.isclose(ll, np.log(weights.sum()))
    want_post = np.stack([np.bincount(paths[:, t], weights, minlength=k) for t in range(n)]) / weights.sum()
    assert np.allclose(post, want_post)
    want_pairs = np.zeros((k, k))
    for p, w in zip(paths, weights):
        np.add.at(want_pairs, (p[:-1], p[1:]), w / weights.sum())
    assert np.allclose(pairs, want_pairs)
