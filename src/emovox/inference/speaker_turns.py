"""Speaker turns over time: a hidden Markov model over a recording's segments refines a clustering.

k-means sees each segment alone; a conversation also says something in its order: people take
turns, so which speaker follows which is not random. Here each speaker is a state, the segments in
time order are the observations (the same features k-means split), and the chance of one speaker
following another is learnt from the recording itself (Baum-Welch, a Laplace prior towards even
odds), so nothing about turn-taking is assumed: a recording whose speakers follow each other at
random learns even odds and is left to k-means. Emissions are spherical Gaussians with one shared
variance, their log-likelihoods scaled by :data:`EMISSION_SCALE` (the features of one recording's
segments are not independent, so their raw likelihoods are overconfident and drown the order;
VBx's acoustic scaling factor, Landini et al. 2022, is the same idea).

The model is taken only where the order explains the recording: its likelihood must beat the same
model with even odds by more than BIC's price of the learnt transitions (``k(k-1)/2 * log N``).
EM starts from several partitions (the clustering's, the plain voices', seeded k-means starts); of
those that pass, the one with the highest likelihood wins, and none passing keeps the clustering.
This is plain numpy: the runtime install has no SciPy or hmmlearn (hmmlearn has no emission
scaling either). On assembled RAVDESS conversations of two same-gender actors taking turns it cut
the wrongly assigned segments from 0.055-0.064 to 0.004-0.016 (chosen on actors 01-12) and from
0.081 to 0.008 (confirmed on 13-16); with the same segments in a random order, or in runs of 1-4
per speaker, it changed nothing (benchmarks/NOTES.md).

It also counts: where ``auto`` hears one voice (two same-gender voices are often too close for the
silhouette), a two-way split that the turn model takes with odds of taking turns
(:func:`alternate`: leaving a state likelier than staying) is two speakers. One actor's moods,
even reordered to alternate, rarely pass both tests (3 of 32 one-actor recordings), while two
actors taking turns do (benchmarks/NOTES.md).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

EMISSION_SCALE = 0.5
TRANSITION_PRIOR = 1.0  # pseudo-count per transition (Laplace): short recordings stay near even odds
ITERATIONS = 30
TOLERANCE = 1e-6


def turn_split(y: np.ndarray, ids: np.ndarray, k: int, *,
               starts: Iterable[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray] | None:
    """The turn model's speaker ids [N] and its learnt transition odds [k, k], from the best start
    that passes the gate, or None where none does (the clustering then stands).

    Args:
        y: [N, F] the features the clustering split, one row per segment in time order.
        ids: [N] the clustering's ids (0..k-1), the first start.
        k: the number of speakers.
        starts: further partitions to start EM from.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if k < 2 or n <= 2 * k:
        return None
    price = 0.5 * k * (k - 1) * np.log(n)
    best, best_ll = None, -np.inf
    seen: set[bytes] = set()
    for start in [ids, *starts]:
        start = np.asarray(start, dtype=int)
        key = first_seen(start).tobytes()
        if key in seen or len(np.unique(start)) < k:
            continue
        seen.add(key)
        found, ll, trans = fit(y, start, k)
        even_ll = fit(y, start, k, learn_transitions=False)[1]
        if ll - even_ll > price and len(np.unique(found)) == k and ll > best_ll:
            best, best_ll = (found, trans), ll
    return best


def alternate(trans: np.ndarray) -> bool:
    """Whether the learnt odds say the states take turns: leaving a state is likelier than staying."""
    return float(np.mean(np.diag(trans))) < 0.5


def fit(y: np.ndarray, ids: np.ndarray, k: int, *,
        learn_transitions: bool = True) -> tuple[np.ndarray, float, np.ndarray]:
    """EM from the partition ``ids``: the most probable state per segment, the (scaled) log-likelihood
    and the transition odds.

    Without ``learn_transitions`` every transition keeps even odds (a mixture model over the same
    emissions), the comparison :func:`turn_split` gates on.
    """
    n, d = y.shape
    post = np.eye(k)[ids]
    trans = np.full((k, k), 1.0 / k)
    first = np.full(k, 1.0 / k)
    ll, last = -np.inf, -np.inf
    for _ in range(ITERATIONS):
        weight = post.sum(axis=0) + 1e-9
        means = (post.T @ y) / weight[:, None]
        sq = ((y[:, None, :] - means[None]) ** 2).sum(axis=2)  # [N, k]
        var = float((post * sq).sum()) / (n * d) + 1e-8
        log_b = EMISSION_SCALE * (-0.5 * sq / var - 0.5 * d * np.log(var))
        if not learn_transitions:  # even odds: each segment on its own (a mixture), no recursion needed
            shift = log_b.max(axis=1, keepdims=True)
            b = np.exp(log_b - shift)
            post = b / b.sum(axis=1, keepdims=True)
            ll = float((np.log(b.mean(axis=1)) + shift[:, 0]).sum())
        else:
            post, pair_counts, ll = _forward_backward(log_b, trans, first)
            trans = (pair_counts + TRANSITION_PRIOR) / (pair_counts + TRANSITION_PRIOR).sum(axis=1, keepdims=True)
            first = (post[0] + 0.1) / (post[0] + 0.1).sum()
        if abs(ll - last) < TOLERANCE:
            break
        last = ll
    return post.argmax(axis=1), ll, trans


def _forward_backward(log_b: np.ndarray, trans: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Scaled forward-backward: state posteriors [N, k], expected transition counts [k, k], log-likelihood."""
    n, k = log_b.shape
    shift = log_b.max(axis=1, keepdims=True)
    b = np.exp(log_b - shift)
    alpha, beta, scale = np.empty((n, k)), np.ones((n, k)), np.empty(n)
    a = first * b[0]
    scale[0] = a.sum()
    alpha[0] = a / scale[0]
    for t in range(1, n):
        a = (alpha[t - 1] @ trans) * b[t]
        scale[t] = a.sum()
        alpha[t] = a / scale[t]
    for t in range(n - 2, -1, -1):
        beta[t] = trans @ (b[t + 1] * beta[t + 1]) / scale[t + 1]
    post = alpha * beta
    post /= post.sum(axis=1, keepdims=True)
    nxt = b[1:] * beta[1:] / scale[1:, None]  # [N-1, k]
    pair_counts = trans * (alpha[:-1].T @ nxt)
    return post, pair_counts, float(np.log(scale).sum() + shift.sum())


def first_seen(ids: np.ndarray) -> np.ndarray:
    """Ids renumbered 0, 1, ... in order of first appearance: equal partitions compare equal, and
    speakers are named in the order they first speak."""
    names: dict[int, int] = {}
    return np.array([names.setdefault(int(i), len(names)) for i in ids], dtype=int)
