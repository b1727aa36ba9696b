"""Per-layer block weights for the ridge head of ``configs/ravdess-whisper.yaml``, chosen per fit by
inner speaker CV on the fit's own training clips (issue 24; measured, not built yet).

The recipe's cached statistics (clean + its copies, the input embeddings left out) are standardised;
each state's block (layers 1-6 and the output) is multiplied by a weight; the head is the recipe's
ridge (alpha 4 x N, class-balanced, one-vs-rest +-1 targets), solved in its dual form. The weights
come from a greedy coordinate search (each block x0.5 or x2, two passes) scored by 4-fold speaker CV
over the fit's speakers (their clean clips scored); the test speakers take no part.

``python -m benchmarks.layer_weights --stage select|confirm|emovo``: selection = 3 folds over RAVDESS
01-12 (``benchmarks.selection``'s), confirm = fitted on 01-12 and scored on 13-16, emovo = EMOVO's 3
folds. Prints the plain and the weighted head's UAR per fold (benchmarks/NOTES.md has the numbers).
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks import channel_copies as C
from benchmarks.selection import EMOVO_FOLDS, RAVDESS_SELECT, corpus_manifest, speaker_ids

STEPS = (0.5, 2.0)
PASSES = 2
INNER_FOLDS = 4


def dual_ridge(z: np.ndarray, y: np.ndarray, l2: float = C.L2, k: int = 8):
    """The recipe's ridge head (class-balanced, intercept by weighted centring) solved through the
    N x N kernel; returns a predict function. Not ``channel_copies.ridge``: that one standardises its
    input again, which would undo the block weights."""
    n = len(y)
    t = -np.ones((n, k))
    t[np.arange(n), y] = 1
    counts = np.bincount(y, minlength=k)
    w = (n / (k * np.maximum(counts, 1)))[y]
    mu = (w[:, None] * z).sum(0) / w.sum()
    tm = (w[:, None] * t).sum(0) / w.sum()
    zc = np.sqrt(w)[:, None] * (z - mu)
    a = np.linalg.solve(zc @ zc.T + l2 * n * np.eye(n), np.sqrt(w)[:, None] * (t - tm))
    coef = zc.T @ a
    return lambda q: ((q - mu) @ coef + tm).argmax(1)


def uar(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def choose_weights(z: np.ndarray, y: np.ndarray, speakers: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Block weights [states] by greedy search on inner speaker CV (``z``: [N, states, D] standardised)."""
    names = np.unique(speakers)
    groups = [names[i::INNER_FOLDS] for i in range(min(INNER_FOLDS, len(names)))]

    def score(wts):
        flat = (z * wts[None, :, None]).reshape(len(z), -1)
        out = []
        for g in groups:
            held = np.isin(speakers, g)
            out.append(uar(y[held & clean], dual_ridge(flat[~held], y[~held])(flat[held & clean])))
        return float(np.mean(out))

    wts = np.ones(z.shape[1])
    best = score(wts)
    for _ in range(PASSES):
        for layer in range(len(wts)):
            for step in STEPS:
                cand = wts.copy()
                cand[layer] *= step
                s = score(cand)
                if s > best + 1e-9:
                    best, wts = s, cand
    return wts


def plans(stage: str) -> tuple[str, list]:
    if stage == "emovo":
        every = ["f1", "f2", "f3", "m1", "m2", "m3"]
        return "emovo", [([x for x in every if x not in test], test) for test, _ in EMOVO_FOLDS]
    if stage == "confirm":
        return "ravdess", [(list(range(1, 13)), [13, 14, 15, 16])]
    return "ravdess", [([a for a in range(1, 13) if a not in test], test) for test, _ in RAVDESS_SELECT]


def run(stage: str) -> dict[str, list[float]]:
    from emovox.labels import get_scheme

    corpus, folds = plans(stage)
    df, scheme, m = corpus_manifest(corpus), get_scheme("ravdess-8"), C.Loaded()
    res: dict[str, list[float]] = {"plain": [], "weighted": []}
    for fit_ids, score_ids in folds:
        fit_df = df[df["speaker"].isin(speaker_ids(df, corpus, fit_ids))].reset_index(drop=True)
        score_df = df[df["speaker"].isin(speaker_ids(df, corpus, score_ids))].reset_index(drop=True)
        y = np.array([scheme.id(v) for v in score_df["label"]])
        x, yt = m.fit_set(fit_df, [])
        s = m.scored(score_df, None)
        states = x.shape[1] // (2 * m.model.config.d_model)
        x, s = (a.reshape(len(a), states, -1)[:, 1:] for a in (x, s))  # the input embeddings left out
        mu, sd = x.mean(0), np.maximum(x.std(0, ddof=1), 1e-6)
        zx, zs = (x - mu) / sd, (s - mu) / sd
        speakers = np.tile(fit_df["speaker"].to_numpy(), len(x) // len(fit_df))
        clean = np.arange(len(x)) < len(fit_df)
        wts = choose_weights(zx, yt, speakers, clean)
        for name, w in (("plain", np.ones_like(wts)), ("weighted", wts)):
            head = dual_ridge((zx * w[None, :, None]).reshape(len(zx), -1), yt)
            res[name].append(uar(y, head((zs * w[None, :, None]).reshape(len(zs), -1))))
        print(f"{stage} fold {len(res['plain'])}: weights {np.round(wts, 2).tolist()}, plain {res['plain'][-1]:.3f}, "
              f"weighted {res['weighted'][-1]:.3f}", flush=True)
    for name, v in res.items():
        print(f"{stage} {name}: {np.mean(v):.3f} ({'/'.join(f'{u:.3f}' for u in v)})")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("select", "confirm", "emovo"), default="select")
    run(ap.parse_args().stage)
