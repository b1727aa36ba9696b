"""Levers on the gender gap, measured on cached whisper-base features (RAVDESS).

``python -m benchmarks.gender_gap --run RUN --manifest M``: RUN is a ``ravdess-whisper`` run whose
frozen encoder defines the features (they come from the feature cache; missing clips are encoded
and cached), M its manifest with actors 13-16 as the test split. A ridge probe like the recipe's
(stats of every layer, standardised, class-balanced, L2 = 4 x N) is fitted on clean clips with:

- ``baseline``: class-balanced sample weights (the recipe's balance);
- ``class x gender``: every (class, gender) cell weighs the same;
- ``speaker-norm``: each speaker's features standardised with that speaker's own statistics
  (transductive: a new speaker needs several clips first; reported apart);
- ``both``.

Chosen on the training speakers (speaker-grouped folds of one male and one female actor each,
01-12), confirmed once on 13-16, which no choice looked at. Writes a section into RESULTS.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, WORK, loadavg, save_result, table

SECTION_TITLE = "## Gender gap levers (cached whisper-base features, RAVDESS)"
LEVERS = ("baseline", "class x gender", "speaker-norm", "both")
L2 = 4.0


def features(run: Path, manifest: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Stats features [N, D] of every manifest row, from the feature cache (encoding what is missing)."""
    from emovox.config import load_config
    from emovox.data.dataset import AudioDataset
    from emovox.labels import get_scheme
    from emovox.models.backbones import backbone_for
    from emovox.models.loading import load_model
    from emovox.models.tuning import backbone_of
    from emovox.training.feature_cache import cached_features

    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    cfg = load_config(run / "config.yaml")  # the encoder as training loaded it: the same feature-cache keys
    scheme = get_scheme("ravdess-8")
    model, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    family = backbone_for(backbone_of(model))
    ds = AudioDataset(df, scheme, lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                      input_name=family.input_name, seed=cfg.seed)
    x = cached_features(model, fe, ds, progress=True)
    return x.reshape(len(df), -1).numpy().astype(np.float64), df


def _speaker_norm(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(speakers):
        m = speakers == s
        out[m] = (x[m] - x[m].mean(axis=0)) / (x[m].std(axis=0) + 1e-6)
    return out


def _weights(y: np.ndarray, g: np.ndarray, lever: str) -> np.ndarray:
    cells = [f"{a}|{b}" for a, b in zip(y, g)] if lever in ("class x gender", "both") else list(map(str, y))
    counts = pd.Series(cells).value_counts()
    w = np.array([1.0 / counts[c] for c in cells])
    return w * len(w) / w.sum()


def fit_score(x, df, train, test, lever: str) -> dict:
    """Fit on ``train`` rows, score ``test`` rows: UAR overall, per gender, the gap."""
    from sklearn.linear_model import RidgeClassifier

    from emovox.evaluation.metrics import uar_of

    if lever in ("speaker-norm", "both"):
        x = _speaker_norm(x, df["speaker"].to_numpy())
    labels = sorted(df["label"].unique())
    y = np.array([labels.index(v) for v in df["label"]])
    g = df["gender"].to_numpy()
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    clf = RidgeClassifier(alpha=L2 * train.sum())
    clf.fit((x[train] - mu) / sd, y[train], sample_weight=_weights(y[train], g[train], lever))
    pred = clf.predict((x[test] - mu) / sd)
    out = {"uar": float(uar_of(y[test], pred, len(labels))[0])}
    for gender in ("female", "male"):
        m = g[test] == gender
        out[gender] = float(uar_of(y[test][m], pred[m], len(labels))[0]) if m.any() else None
    out["gap"] = abs(out["female"] - out["male"]) if None not in (out["female"], out["male"]) else None
    return out


def run(run_dir: Path, manifest: Path) -> dict:
    t0 = time.time()
    x, df = features(run_dir, manifest)
    speakers = df["speaker"].astype(int).to_numpy()
    dev = speakers <= 12
    folds = [(a, a + 1) for a in range(1, 13, 2)]  # one male (odd) and one female (even) actor each
    selection = {}
    for lever in LEVERS:
        rows = [fit_score(x, df, dev & ~np.isin(speakers, f), np.isin(speakers, f), lever) for f in folds]
        selection[lever] = {k: float(np.mean([r[k] for r in rows])) for k in ("uar", "gap", "female", "male")}
    confirm = {lever: fit_score(x, df, dev, speakers >= 13, lever) for lever in LEVERS}
    return {"selection": selection, "confirmation": confirm, "seconds": time.time() - t0, "load": loadavg()}


def render(r: dict) -> str:
    rows = [[lever, f"{s['uar']:.3f}", f"{s['gap']:.3f}", f"{c['uar']:.3f}", f"{c['female']:.3f}", f"{c['male']:.3f}",
             f"{c['gap']:.3f}"] for lever, s, c in ((k, r["selection"][k], r["confirmation"][k]) for k in LEVERS)]
    return "\n".join([
        SECTION_TITLE, "",
        "A ridge probe on the cached stats of every whisper-base layer (clean clips only, no augmented copies; an "
        "approximation of `configs/ravdess-whisper.yaml`'s head, fitted with scikit-learn so the levers can be swapped "
        "in seconds). Selection: 6 speaker-grouped folds over actors 01-12 (one male and one female actor held out "
        "each); confirmation: fitted on 01-12, scored once on 13-16. `speaker-norm` is transductive (each test "
        f"speaker normalised with its own clips). Shared 2-core machine (load {', '.join(f'{v:.1f}' for v in r['load'])}).",
        "", table(["lever", "selection UAR", "selection gap", "confirm UAR", "female", "male", "confirm gap"], rows), ""])


def splice(section: str, results_md: Path = ROOT / "RESULTS.md") -> Path:
    from benchmarks.stress_bench import splice as put

    return put(section, results_md, title=SECTION_TITLE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gender_gap", description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=WORK / "stress" / "run")
    ap.add_argument("--manifest", type=Path, default=WORK / "stress" / "prepared" / "manifest.csv")
    args = ap.parse_args(argv)
    result = run(args.run, args.manifest)
    save_result("gender-gap", {"result": result})
    print(render(result))
    print(f"wrote {splice(render(result))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
