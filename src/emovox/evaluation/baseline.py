"""The eGeMAPS baseline: openSMILE functionals per clip, standardised, and a linear classifier.

The number every fine-tuned model must beat: 88 eGeMAPS v02 functionals (Eyben et al., 2016)
per clip, z-scored, into a class-balanced logistic regression whose C is chosen on the
validation split by UAR. Its ``metrics.json`` has exactly the keys ``emovox evaluate`` writes,
so the two compare side by side. Optional speaker normalisation z-scores every feature within
each speaker first (a common SER practice; it uses each test speaker's unlabelled clips).

Features are cached in ``out/features.csv`` (one row per file, keyed by path, size and mtime),
so re-running with other options or folds does not extract again.
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.audio import SAMPLE_RATE, load_audio
from ..errors import BadAudio, BadManifest
from ..labels import LabelScheme, get_scheme, infer_scheme
from ..data.manifest import SPLITS, load_manifest, manifest_fingerprint
from .metrics import classification_metrics, compare_table, confusion

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
FEATURES_NAME = "features.csv"
_KEY = ("path", "bytes", "mtime_ns")


@lru_cache(maxsize=1)
def _smile():
    """One openSMILE extractor per process (building it parses the config files)."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def feature_names() -> list[str]:
    """The 88 eGeMAPS v02 functional names, in openSMILE's order."""
    return list(_smile().feature_names)


def clip_features(path: str) -> tuple[np.ndarray | None, str]:
    """eGeMAPS functionals of one clip decoded at 16 kHz mono: (features, "") or (None, reason)."""
    try:
        wave = load_audio(path, sample_rate=SAMPLE_RATE)
    except BadAudio as exc:
        return None, str(exc)
    values = wave_features(wave)
    if not np.isfinite(values).all():
        return None, f"{path}: openSMILE returned non-finite features (clip too short?)"
    return values, ""


def wave_features(wave: np.ndarray) -> np.ndarray:
    """eGeMAPS functionals [88] of a 16 kHz mono wave (e.g. one degraded in memory)."""
    return _smile().process_signal(wave, SAMPLE_RATE).to_numpy(dtype=np.float64).reshape(-1)


def _file_key(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return path, int(st.st_size), int(st.st_mtime_ns)


def extract_features(paths: Sequence[str], *, cache: Path | None = None, workers: int | None = None,
                     progress: bool = False) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """eGeMAPS functionals for many files, in parallel, reusing and extending a CSV cache.

    Returns:
        A frame indexed by path (only files that could be scored) and the (path, reason) of
        files that could not.
    """
    names = feature_names()
    cached = _read_cache(cache, names)
    keys = {p: _file_key(p) if os.path.exists(p) else (p, -1, -1) for p in dict.fromkeys(paths)}
    todo = [p for p, k in keys.items() if k not in cached.index]
    rows, errors = [], []
    for path, (values, reason) in zip(todo, _map(clip_features, todo, workers, progress)):
        if values is None:
            errors.append((path, reason))
        else:
            rows.append((*keys[path], *values))
    fresh = pd.DataFrame(rows, columns=[*_KEY, *names]).set_index(list(_KEY))
    table = pd.concat([cached, fresh]) if len(cached) else fresh
    if cache is not None and rows:
        table.reset_index().to_csv(cache, index=False)  # full precision: cached = freshly extracted
    wanted = [k for k in keys.values() if k in table.index]
    found = table.loc[wanted]
    found.index = [k[0] for k in wanted]
    return found, errors


def _read_cache(cache: Path | None, names: list[str]) -> pd.DataFrame:
    """The cached feature rows, indexed by (path, bytes, mtime_ns); empty when absent or stale."""
    if cache is None or not Path(cache).exists():
        return pd.DataFrame(columns=[*_KEY, *names]).set_index(list(_KEY))
    table = pd.read_csv(cache, dtype={"path": str})
    if list(table.columns) != [*_KEY, *names]:
        return pd.DataFrame(columns=[*_KEY, *names]).set_index(list(_KEY))
    return table.drop_duplicates(subset=list(_KEY), keep="last").set_index(list(_KEY))


def _map(fn, items: list[str], workers: int | None, progress: bool):
    """``map`` over a process pool (serial for few items); a tqdm bar when ``progress``."""
    workers = workers or os.cpu_count() or 1
    progress = progress and bool(items)
    if workers <= 1 or len(items) < 16:
        return _bar(map(fn, items), len(items), progress)
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        return list(_bar(pool.map(fn, items, chunksize=max(4, len(items) // (workers * 8))), len(items), progress))
    finally:
        pool.shutdown()


def _bar(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="eGeMAPS", unit="file", mininterval=0.5)


def speaker_normalise(features: pd.DataFrame, speakers: Sequence[str]) -> pd.DataFrame:
    """Z-score every feature within each speaker (constant features within a speaker become 0)."""
    grouped = features.groupby(np.asarray(speakers, dtype=str))
    centred = features - grouped.transform("mean")
    scale = grouped.transform("std", ddof=0).replace(0.0, 1.0).fillna(1.0)
    return centred / scale


def fit_classifier(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                   grid: Sequence[float] = C_GRID, seed: int = 0):
    """Standardise + balanced logistic regression, C picked by validation UAR (ties: smaller C).

    Returns:
        The pipeline fitted on ``X``, the chosen C and the validation UAR of every C.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores, best = {}, None
    for C in grid:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000,
                                                                 random_state=seed))
        clf.fit(X, y)
        scores[C] = float(balanced_accuracy_score(y_val, clf.predict(X_val)))
        if best is None or scores[C] > scores[best[0]]:
            best = (C, clf)
    return best[1], best[0], scores


def _probabilities(clf, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over the whole scheme (classes unseen in training get 0)."""
    P = np.zeros((len(X), n_classes))
    P[:, clf.classes_] = clf.predict_proba(X)
    return P


def _scheme(df: pd.DataFrame, scheme: str | None) -> LabelScheme:
    s = get_scheme(scheme) if scheme else infer_scheme(df["label"])
    unknown = sorted(set(df["label"]) - set(s.labels))
    if unknown:
        raise BadManifest(f"labels {', '.join(unknown)} are not in scheme {s.name!r} ({', '.join(s.labels)})")
    return s


def _split_arrays(df: pd.DataFrame, X: pd.DataFrame, scheme: LabelScheme, split: str) -> tuple[np.ndarray, np.ndarray]:
    part = df[df["split"] == split]
    if part.empty:
        raise BadManifest(f"the baseline needs rows in split {split!r}; found none (splits: "
                          f"{', '.join(sorted(df['split'].unique()))})")
    return X.loc[part["path"]].to_numpy(), np.array([scheme.id(lab) for lab in part["label"]])


def fit_and_score(df: pd.DataFrame, X: pd.DataFrame, scheme: LabelScheme, *, split: str = "test",
                  seed: int = 0) -> tuple[dict, dict, np.ndarray]:
    """Fit on ``train``, choose C on ``validation``, score ``split``.

    Returns:
        evaluate-style metrics, facts about the fit (C, validation UAR per C, sizes), and the
        ``split``'s probabilities in row order.
    """
    X_tr, y_tr = _split_arrays(df, X, scheme, "train")
    X_va, y_va = _split_arrays(df, X, scheme, "validation")
    X_te, y_te = _split_arrays(df, X, scheme, split)
    clf, C, scores = fit_classifier(X_tr, y_tr, X_va, y_va, seed=seed)
    P = _probabilities(clf, X_te, len(scheme))
    metrics = classification_metrics(y_te, P, scheme)
    fit = {"C": C, "validation_uar_per_C": {str(c): s for c, s in scores.items()},
           "n_train": int(len(y_tr)), "n_validation": int(len(y_va))}
    return metrics, fit, P


def _features_for(df: pd.DataFrame, out: Path, *, speaker_norm: bool, workers: int | None,
                  progress: bool) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Rows that could be scored, their feature table (speaker-normalised on request), errors."""
    X, errors = extract_features(list(df["path"]), cache=out / FEATURES_NAME, workers=workers, progress=progress)
    if errors:
        pd.DataFrame(errors, columns=["path", "error"]).to_csv(out / "errors.csv", index=False)
    df = df[df["path"].isin(X.index)].reset_index(drop=True)
    if df.empty:
        raise BadManifest(f"no file could be scored (see {out / 'errors.csv'})")
    X = X.loc[df["path"]]
    if speaker_norm:
        X = speaker_normalise(X, df["speaker"].astype(str).to_numpy())
        X.index = df["path"]
    return df, X, errors


def run_baseline(*, manifest: str | Path, out: str | Path, split: str = "test", speaker_norm: bool = False,
                 scheme: str | None = None, workers: int | None = None, seed: int = 0,
                 progress: bool = False) -> dict:
    """eGeMAPS + logistic regression on the manifest's own splits; writes the evaluate-style report.

    Writes ``metrics.json`` (the keys ``emovox evaluate`` writes), ``baseline.json`` (chosen C,
    validation UAR per C, options), ``confusion_matrix.png/.csv``, ``predictions.csv``,
    ``report.md`` and the feature cache ``features.csv`` into ``out``.

    Raises:
        BadManifest: a needed split is empty, labels outside ``scheme``, or nothing could be scored.
    """
    if split not in SPLITS:
        raise BadManifest(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = load_manifest(manifest)
    sch = _scheme(df, scheme)
    df, X, errors = _features_for(df, out, speaker_norm=speaker_norm, workers=workers, progress=progress)
    metrics, fit, P = fit_and_score(df, X, sch, split=split, seed=seed)
    test = df[df["split"] == split].reset_index(drop=True)
    metrics.update(split=split, n_errors=len(errors), manifest_fingerprint=manifest_fingerprint(test))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    facts = {"features": "eGeMAPSv02 functionals (openSMILE)", "n_features": int(X.shape[1]),
             "classifier": "StandardScaler + LogisticRegression(class_weight='balanced')",
             "speaker_norm": speaker_norm, "scheme": sch.name, **fit}
    (out / "baseline.json").write_text(json.dumps(facts, indent=2))
    _write_outputs(out, test, P, sch, metrics, facts, manifest)
    return metrics


def _write_outputs(out: Path, test: pd.DataFrame, P: np.ndarray, scheme: LabelScheme, metrics: dict,
                   facts: dict, manifest) -> None:
    from .plots import plot_confusion

    y = np.array([scheme.id(lab) for lab in test["label"]])
    pred = P.argmax(axis=1)
    plot_confusion(confusion(y, pred, len(scheme)), scheme.labels, out / "confusion_matrix",
                   title=f"eGeMAPS baseline: UAR {metrics['uar']:.3f}, accuracy {metrics['accuracy']:.3f}")
    pd.DataFrame({"path": test["path"], "speaker": test["speaker"], "true": test["label"],
                  "predicted": [scheme.labels[i] for i in pred], "confidence": P.max(axis=1)}
                 ).to_csv(out / "predictions.csv", index=False, float_format="%.5f")
    present = sum(1 for c in metrics["per_class"].values() if c["support"])
    majority = {"accuracy": metrics["majority_accuracy"], "uar": 1.0 / max(1, present)}
    lines = [f"# eGeMAPS baseline: {metrics['split']} split", "", f"- manifest: {manifest}",
             f"- clips: {metrics['n']} ({metrics['n_errors']} could not be scored)",
             *(f"- {k}: {v}" for k, v in facts.items()), "", "## Headline", "",
             compare_table({"eGeMAPS + logistic regression": metrics, "majority baseline": majority},
                           keys=("accuracy", "uar", "macro_f1", "loss", "ece")),
             "## Per class", "", "| label | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|",
             *(f"| {lab} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
               for lab, c in metrics["per_class"].items()),
             "", "![confusion matrix](confusion_matrix.png)", ""]
    (out / "report.md").write_text("\n".join(lines))


def cross_validate_baseline(*, manifest: str | Path, out: str | Path, folds: int | None = None,
                            fold_speakers: str | Path | None = None, fold_by: str | None = None,
                            speaker_norm: bool = False, scheme: str | None = None, workers: int | None = None,
                            seed: int = 0, confirm: bool = False, progress: bool = False):
    """Speaker-grouped K-fold of the baseline, with the same folds as ``emovox cv`` (same seed, or
    the same given folds: ``fold_speakers`` / ``fold_by``, as ``data.fold_plan`` reads them).

    Features are extracted once for every row; each fold chooses C on its own validation speakers.
    Writes ``cv_metrics.json`` and ``cv_report.md`` as ``emovox cv`` does. With ``confirm`` (as
    ``emovox cv --confirm``) the test split's speakers take part in no fold and are scored once at
    the end by a fit on the manifest's own train and validation splits.

    Returns:
        The :class:`~emovox.evaluation.cv_report.CVResult`.

    Raises:
        BadManifest: missing speakers, too few speakers for ``folds``, labels outside ``scheme``, or
            ``confirm`` without a test split.
    """
    from ..data.fold_plan import resolve_folds
    from ..data.splits import fold_manifests, held_for_confirmation
    from .cv_report import fold_row, write_cv_outputs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = load_manifest(manifest)
    sch = _scheme(df, scheme)
    held = held_for_confirmation(df, manifest) if confirm else None  # fails before any feature is extracted
    plan = resolve_folds(df, folds=folds, fold_speakers=fold_speakers, fold_by=fold_by,
                         held=set(df.loc[held, "speaker"].astype(str)) if confirm else ())
    n_folds = plan if isinstance(plan, int) else len(plan)
    df, X, _ = _features_for(df, out, speaker_norm=speaker_norm, workers=workers, progress=progress)
    rows = []
    for k, fold_df in enumerate(fold_manifests(df[df["split"] != "test"] if confirm else df, folds=plan, seed=seed),
                                start=1):
        metrics, fit, _ = fit_and_score(fold_df, X, sch, seed=seed)  # X is looked up by path
        rows.append({**fold_row(k, fold_df, metrics), "C": fit["C"]})
        if progress:
            print(f"fold {k}/{n_folds}: UAR {metrics['uar']:.4f} (C={fit['C']})", file=sys.stderr, flush=True)
    info = {"manifest": str(Path(manifest).resolve()), "model": "eGeMAPSv02 + LogisticRegression",
            "speaker_norm": speaker_norm, "seed": seed, "fold_plan": "seeded" if isinstance(plan, int) else "given"}
    confirmation = fold_row("confirmation", df, fit_and_score(df, X, sch, seed=seed)[0]) if confirm else None
    given = "" if isinstance(plan, int) else " (given folds)"
    return write_cv_outputs(out, rows, info, title=f"eGeMAPS baseline, {n_folds}-fold speaker-independent CV{given}",
                            confirmation=confirmation)
