"""Per-layer block weights for the ridge head of ``configs/ravdess-whisper.yaml``, chosen per fit by
inner speaker CV on the fit's own training clips (issue 24; measured, not taken).

The recipe's cached statistics [2 (means, deviations), states, hidden] (clean + its copies, the input
embeddings left out as ``model.stats_skip_states: 1`` does) are standardised; each hidden state's block
(its means and deviations: layers 1-6 and the output; ``--split``: means and deviations apart) is
multiplied by a weight; the head is the recipe's ridge (alpha 4 x N, class-balanced, one-vs-rest +-1
targets), solved in its dual form from one Gram matrix per block. The weights come from a greedy
coordinate search (each block x0.5 or x2, two passes) scored by 4-fold speaker CV over the fit's
speakers (their clean clips scored); the test speakers take no part.

``python -m benchmarks.layer_weights --stage select|confirm|emovo [--split]``: selection = 3 folds over RAVDESS
01-12 (``benchmarks.selection``'s), confirm = fitted on 01-12 and scored on 13-16, emovo = EMOVO's 3
folds. Prints the plain and the weighted head's UAR per fold (benchmarks/NOTES.md has the numbers).
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import balanced_accuracy_score as uar  # UAR

from benchmarks import channel_copies as C
from benchmarks.selection import EMOVO_FOLDS, RAVDESS_SELECT, corpus_manifest, speaker_ids

SKIP = 1  # the recipe's model.stats_skip_states: the input embeddings left out
STEPS = (0.5, 2.0)
PASSES = 2
INNER_FOLDS = 4


def state_columns(shape: tuple[int, ...], skip: int = 0, split: bool = False) -> list[np.ndarray]:
    """Column indices of each hidden state's block (its means and standard deviations) in the
    flattened statistics of shape [2, states, hidden]; the first ``skip`` states are left out.
    ``split``: the means' and the deviations' blocks apart (means of every state first)."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    if split:
        return [idx[k, s] for k in range(shape[0]) for s in range(skip, shape[1])]
    return [idx[:, s].ravel() for s in range(skip, shape[1])]


def _uar(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


class InnerCV:
    """Ridge fits in speaker cross-validation on one fit's rows, in the dual form.

    ``z``: standardised features [N, D]; ``blocks``: column indices per state; ``y`` labels;
    ``speakers`` per row; ``clean``: rows that are clean clips (the only ones scored). ``held``: the
    folds' held-out rows (boolean masks), by default ``INNER_FOLDS`` groups of speakers."""

    def __init__(self, z: np.ndarray, blocks: list[np.ndarray], y: np.ndarray, speakers, clean: np.ndarray, *,
                 n_classes: int, l2: float, balanced: bool, held: list[np.ndarray] | None = None):
        speakers = np.asarray(speakers, dtype=object).astype(str)
        self.y, self.clean, self.k, self.l2, self.balanced = y, clean, n_classes, l2, balanced
        self.grams = [z[:, c] @ z[:, c].T for c in blocks]
        names = np.unique(speakers)
        self.folds = held if held is not None else \
            [np.isin(speakers, names[i::INNER_FOLDS]) for i in range(min(INNER_FOLDS, len(names)))]

    def score(self, weights: np.ndarray) -> float:
        """Mean UAR over the inner folds of the ridge head on features weighted by ``weights``."""
        return float(np.mean([_uar(self.y[held & self.clean], pred) for held, pred in self.predict(weights)]))

    def predict(self, weights: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per fold: its held-out mask and the predicted classes of its held-out clean rows."""
        from scipy.linalg import cho_factor, cho_solve

        gram = sum((w * w) * g for w, g in zip(weights, self.grams))
        out = []
        for held in self.folds:
            fit, test = ~held, held & self.clean
            y = self.y[fit]
            t = -np.ones((len(y), self.k))
            t[np.arange(len(y)), y] = 1.0
            counts = np.bincount(y, minlength=self.k).astype(float)
            present = counts > 0
            cw = np.zeros(self.k)
            cw[present] = len(y) / (present.sum() * counts[present])
            w = cw[y] if self.balanced else np.ones(len(y))
            p = w / w.sum()
            k_ff = gram[np.ix_(fit, fit)]
            kp = k_ff @ p
            c = p @ kp
            root = np.sqrt(w)
            centred = (k_ff - kp[:, None] - kp[None, :] + c) * root[:, None] * root[None, :]
            centred[np.diag_indices_from(centred)] += max(self.l2, 1e-8) * len(y)
            tm = p @ t
            a = cho_solve(cho_factor(centred, overwrite_a=True), root[:, None] * (t - tm))
            k_tf = gram[np.ix_(test, fit)]
            cross = k_tf - (k_tf @ p)[:, None] - kp[None, :] + c
            out.append((held, (cross @ (root[:, None] * a) + tm).argmax(1)))
        return out


def search_weights(cv: InnerCV, n_states: int) -> tuple[np.ndarray, float, float]:
    """Greedy coordinate search from all ones (each weight x0.5 or x2, ``PASSES`` passes).

    Returns:
        The weights, the inner-CV UAR of all ones, and that of the weights."""
    weights = np.ones(n_states)
    start = best = cv.score(weights)
    for p in range(PASSES):
        for s in range(n_states):
            for step in STEPS:
                cand = weights.copy()
                cand[s] *= step
                value = cv.score(cand)
                if value > best + 1e-9:
                    best, weights = value, cand
    return weights, start, best


def plans(stage: str) -> tuple[str, list]:
    if stage == "emovo":
        every = ["f1", "f2", "f3", "m1", "m2", "m3"]
        return "emovo", [([x for x in every if x not in test], test) for test, _ in EMOVO_FOLDS]
    if stage == "confirm":
        return "ravdess", [(list(range(1, 13)), [13, 14, 15, 16])]
    return "ravdess", [([a for a in range(1, 13) if a not in test], test) for test, _ in RAVDESS_SELECT]


def run(stage: str, split: bool = False) -> dict[str, list[float]]:
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
        shape = (2, x.shape[1] // (2 * m.model.config.d_model), m.model.config.d_model)
        mu, sd = x.mean(0), np.maximum(x.std(0, ddof=1), 1e-6)  # StatsScaler's standardisation
        zx, zs = (x - mu) / sd, (s - mu) / sd
        blocks = state_columns(shape, SKIP, split=split)
        speakers = np.tile(fit_df["speaker"].astype(str).to_numpy(), len(x) // len(fit_df))
        clean = np.arange(len(x)) < len(fit_df)
        kw = dict(n_classes=len(scheme), l2=C.L2, balanced=True)
        wts, _, _ = search_weights(InnerCV(zx, blocks, yt, speakers, clean, **kw), len(blocks))
        # the outer fit: the same dual ridge with the score speakers as its one held-out fold
        both = np.concatenate([zx, zs])
        outer = InnerCV(both, blocks, np.concatenate([yt, y]), np.concatenate([speakers, score_df["speaker"]]),
                        np.ones(len(both), bool), held=[np.arange(len(both)) >= len(zx)], **kw)
        for name, w in (("plain", np.ones_like(wts)), ("weighted", wts)):
            res[name].append(uar(y, outer.predict(w)[0][1]))
        print(f"{stage} fold {len(res['plain'])}: weights {np.round(wts, 2).tolist()}, plain {res['plain'][-1]:.3f}, "
              f"weighted {res['weighted'][-1]:.3f}", flush=True)
    for name, v in res.items():
        print(f"{stage} {name}: {np.mean(v):.3f} ({'/'.join(f'{u:.3f}' for u in v)})")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("select", "confirm", "emovo"), default="select")
    ap.add_argument("--split", action="store_true", help="weigh each state's means and deviations apart")
    args = ap.parse_args()
    run(args.stage, args.split)
