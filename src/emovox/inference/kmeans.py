"""k-means, PCA and the cosine silhouette in numpy, for clustering a recording's voice embeddings.

scikit-learn does these, but it brings SciPy (over 100 MB) into the runtime install, which must stay
small (no torch, no scikit-learn: onnxruntime and numpy). They follow scikit-learn's definitions:
greedy k-means++ seeding (``2 + log k`` candidates per centre, the one that lowers the inertia most),
Lloyd iterations until the centres move less than ``tol`` times the data's mean variance, the best
of ``n_init`` seeded starts; PCA as the SVD of the centred data; the silhouette with cosine
distance, 0 for a point alone in its cluster. tests/inference/test_kmeans.py holds them against
scikit-learn.
"""
from __future__ import annotations

import numpy as np


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """``x`` [N, D] projected on its ``dims`` main directions (centred, [N, dims])."""
    c = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    return c @ vt[:dims].T


def kmeans(x: np.ndarray, k: int, *, n_init: int = 10, seed: int = 0, max_iter: int = 300,
           tol: float = 1e-4) -> np.ndarray:
    """Cluster ids [N] of the lowest-inertia start among ``n_init`` (seeded, repeatable)."""
    x = np.asarray(x, dtype=np.float64)
    if k <= 1 or len(x) <= 1:
        return np.zeros(len(x), dtype=int)
    rng = np.random.default_rng(seed)
    stop = tol * float(np.mean(np.var(x, axis=0)))
    best, best_inertia = np.zeros(len(x), dtype=int), np.inf
    for _ in range(n_init):
        ids, inertia = _lloyd(x, _plus_plus(x, k, rng), max_iter, stop)
        if inertia < best_inertia:
            best, best_inertia = ids, inertia
    return best


def _sq_dist(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    trials = 2 + int(np.log(k))
    centres = [x[rng.integers(len(x))]]
    closest = _sq_dist(x, centres[0][None])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point sits on a centre already
            centres.append(x[rng.integers(len(x))])
            continue
        candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        candidates = np.minimum(candidates, len(x) - 1)
        pots = np.minimum(closest[None, :], _sq_dist(x, x[candidates]).T)
        pick = int(np.argmin(pots.sum(axis=1)))
        centres.append(x[candidates[pick]])
        closest = pots[pick]
    return np.stack(centres)


def _lloyd(x: np.ndarray, centres: np.ndarray, max_iter: int, stop: float) -> tuple[np.ndarray, float]:
    for _ in range(max_iter):
        d = _sq_dist(x, centres)
        ids = d.argmin(axis=1)
        new = centres.copy()
        for c in range(len(centres)):
            members = x[ids == c]
            if len(members):
                new[c] = members.mean(axis=0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(d[np.arange(len(x)), ids].argmax())
                new[c], ids[far] = x[far], c
        shift = float(((new - centres) ** 2).sum())
        centres = new
        if shift <= stop:
            break
    d = _sq_dist(x, centres)
    ids = d.argmin(axis=1)
    return ids, float(d[np.arange(len(x)), ids].sum())


def silhouette_cosine(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per-point silhouette with cosine distance (``1 - cos``), as ``silhouette_samples(metric="cosine")``."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    ids = np.asarray(ids)
    labels = np.unique(ids)
    if len(labels) < 2:
        return np.zeros(len(x))
    member = (ids[None, :] == labels[:, None]).astype(np.float64)  # [C, N]
    sums = dist @ member.T  # [N, C]: summed distance to each cluster
    sizes = member.sum(axis=1)
    own = np.searchsorted(labels, ids)
    own_size = sizes[own]
    a = sums[np.arange(len(x)), own] / np.maximum(own_size - 1, 1)
    other = sums / sizes[None, :]
    other[np.arange(len(x)), own] = np.inf
    b = other.min(axis=1)
    s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    return np.where(own_size > 1, s, 0.0)
