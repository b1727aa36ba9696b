"""The turn model (``speaker_turns``): where speakers take turns and k-means splits moods, the order
puts the voices back together; where the order says nothing, the clustering is kept as it was; the
forward-backward pass is exact."""
import itertools

import numpy as np

from emovox.inference import speaker_turns
from emovox.inference.kmeans import kmeans
from emovox.inference.speakers import cluster_speakers

SEEDS = range(20)


def _voices(seed, order, n=24):
    """``n`` segments of two speakers, each a speaker direction plus one of 4 moods drawn at random
    (1.3 times as far apart as the voices) plus noise, L2-normalised; the speakers alternate, or
    follow each other at random."""
    rng = np.random.default_rng(seed)
    speaker = rng.normal(size=(2, 32))
    speaker /= np.linalg.norm(speaker, axis=1, keepdims=True)
    mood = rng.normal(size=(4, 32))
    mood *= 1.3 / np.linalg.norm(mood, axis=1, keepdims=True)
    who = np.arange(n) % 2 if order == "alternate" else rng.integers(0, 2, n)
    x = speaker[who] + mood[rng.integers(0, 4, n)] + rng.normal(size=(n, 32)) * 0.15
    return x / np.linalg.norm(x, axis=1, keepdims=True), who


def _wrong(ids, who):
    agree = np.mean([(i == ids[0]) == (w == who[0]) for i, w in zip(ids, who)])
    return min(agree, 1 - agree)


def _without_turns(x):
    c = x - x.mean(axis=0)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    c -= c.mean(axis=0)
    y = c @ np.linalg.svd(c, full_matrices=False)[2][:4].T  # what cluster_speakers splits (PCA to 4)
    return y, kmeans(y, 2, n_init=10, seed=0)


def test_speakers_taking_turns_are_split_by_voice_where_kmeans_splits_moods():
    with_turns, alone = [], []
    for seed in SEEDS:
        x, who = _voices(seed, "alternate")
        with_turns.append(_wrong(cluster_speakers(x, 2), who))
        alone.append(_wrong(_without_turns(x)[1], who))
    assert np.mean(alone) > 0.2, alone  # k-means alone splits the moods in many draws
    assert np.mean(with_turns) < 0.1 and np.mean(with_turns) < np.mean(alone) / 2, with_turns


def test_an_order_that_says_nothing_leaves_the_clustering_as_it_was():
    for seed in SEEDS:
        x, who = _voices(seed, "random")
        y, ids = _without_turns(x)
        assert list(speaker_turns.refine_turns(y, ids, 2)) == list(ids)


def test_too_few_segments_are_left_alone():
    y = np.random.default_rng(0).normal(size=(4, 3))
    ids = np.array([0, 1, 0, 1])
    assert speaker_turns.refine_turns(y, ids, 2) is ids


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
