"""Cheap levers for ``configs/ravdess-whisper.yaml`` on cached statistics, under the protocol of
``benchmarks.selection`` (chosen on the 3 folds over actors 01-12, confirmed on 13-16).

The recipe's final model is refitted as it refits (a ridge probe, alpha = 4 x N, on standardised
statistics, class-balanced, fitted on train + validation, clean clips plus one augmented copy),
scikit-learn on the feature cache, so each lever costs seconds: which layers' statistics the head
reads, the augmented copy, and whisper-tiny.en's statistics beside base's. Rows are appended to
_work/selection/levers.jsonl; ``--render`` prints the table.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from benchmarks.selection import CONFIG, OUT, RAVDESS_CONFIRM, RAVDESS_SELECT, corpus_manifest, speaker_ids
from benchmarks.common import table

L2 = 4.0


def stats(model_name: str, df: pd.DataFrame, *, copy: bool) -> np.ndarray:
    """Cached statistics [N, 2, L + 2, H] of ``df``'s clips (clean, or their first augmented copy)."""
    from emovox.config import load_config
    from emovox.labels import get_scheme
    from emovox.models.loading import load_model
    from emovox.training.feature_cache import cached_features
    from emovox.training.features import clip_datasets

    cfg = load_config(CONFIG)
    scheme = get_scheme("ravdess-8")
    model, fe = load_model(model_name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    ds, variant = clip_datasets(model, fe, df, scheme, cfg, copies=1)[1 if copy else 0]
    return cached_features(model, fe, ds, variant=variant, progress=True).numpy().astype(np.float64)


def uar(x: np.ndarray, xc: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, *, copies: bool) -> float:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import recall_score

    xt, yt = (np.concatenate([x[train], xc[train]]), np.concatenate([y[train], y[train]])) if copies else (x[train], y[train])
    mu, sd = xt.mean(0), np.maximum(xt.std(0, ddof=1), 1e-6)
    targets = -np.ones((len(yt), 8))
    targets[np.arange(len(yt)), yt] = 1.0
    counts = np.bincount(yt, minlength=8)
    w = (len(yt) / (8 * counts))[yt]
    fit = Ridge(alpha=L2 * len(yt)).fit((xt - mu) / sd, targets, sample_weight=w)
    pred = fit.predict((x[test] - mu) / sd).argmax(1)
    return float(recall_score(y[test], pred, average="macro"))


LEVERS = {  # name -> (layer indices of base's L + 2 = 8 stats rows, or None: all; means only; copies; + tiny.en)
    "all layers + 1 copy (shipped)": (None, False, True, False),
    "no augmented copy": (None, False, False, False),
    "means only": (None, True, True, False),
    "layers 3-6 + output": ([3, 4, 5, 6, 7], False, True, False),
    "layers 0-4": ([0, 1, 2, 3, 4], False, True, False),
    "without the embeddings (layers 1-6 + output)": ([1, 2, 3, 4, 5, 6, 7], False, True, False),
    "+ whisper-tiny.en statistics": (None, False, True, True),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levers", default=",".join(LEVERS))
    ap.add_argument("--render", action="store_true")
    args = ap.parse_args(argv)
    if args.render:
        print(render())
        return
    df = corpus_manifest("ravdess")
    y = np.array([sorted(df["label"].unique()).index(v) for v in df["label"]])
    base = {c: stats("whisper-base", df, copy=c) for c in (False, True)}
    splits = {}
    for i, (test, val) in enumerate(RAVDESS_SELECT):
        t = df["speaker"].isin(speaker_ids(df, "ravdess", test)).to_numpy()
        pool = df["speaker"].isin(speaker_ids(df, "ravdess", range(1, 13))).to_numpy()
        splits[("select", i)] = (pool & ~t, t)
    t = df["speaker"].isin(speaker_ids(df, "ravdess", RAVDESS_CONFIRM[0])).to_numpy()
    splits[("confirm", 0)] = (~t, t)
    tiny = None
    for name in args.levers.split(","):
        layers, means, copies, with_tiny = LEVERS[name]
        if with_tiny and tiny is None:
            tiny = {c: stats("whisper-tiny.en", df, copy=c) for c in (False, True)}

        def view(c):
            a = base[c][:, :1] if means else base[c]
            a = a if layers is None else a[:, :, layers]
            a = a.reshape(len(a), -1)
            return np.concatenate([a, tiny[c].reshape(len(a), -1)], 1) if with_tiny else a

        x, xc = view(False), view(True)
        for (stage, i), (train, test) in splits.items():
            row = {"lever": name, "stage": stage, "fold": i, "uar": uar(x, xc, y, train, test, copies=copies)}
            print(json.dumps(row), flush=True)
            with (OUT / "levers.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")


def render() -> str:
    rows = [json.loads(line) for line in (OUT / "levers.jsonl").read_text().splitlines()]
    names = list(dict.fromkeys(r["lever"] for r in rows))

    def cell(name, stage):
        xs = [r["uar"] for r in rows if r["lever"] == name and r["stage"] == stage]
        folds = "/".join(f"{x:.3f}".lstrip("0") for x in xs)
        return f"{np.mean(xs):.3f} ({folds})" if len(xs) > 1 else (f"{xs[0]:.3f}" if xs else "—")

    return table(["lever (ridge refit on cached statistics)", "selection UAR (3 folds, 01-12)", "confirmation UAR (13-16)"],
                 [[n, cell(n, "select"), cell(n, "confirm")] for n in names])


if __name__ == "__main__":
    main()
