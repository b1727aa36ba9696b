"""Speaker-grouped K-fold cross-validation: one training run per fold, scored on unseen speakers.

A single speaker-independent holdout on a 16-speaker corpus puts 3 speakers in test, so its UAR
swings by several points with the choice of speakers. Cross-validation tests on every speaker
once and reports mean ± std over folds. The fold layout (:func:`fold_manifests`) and the summary
(:func:`summarise_folds`, :func:`write_cv_outputs`) are shared with the eGeMAPS baseline.

Layout of ``out``::

    fold-K/manifest.csv   the fold's manifest (test = the fold's speakers)
    fold-K/run/           the training run
    fold-K/eval/          ``evaluate`` on the fold's test split
    cv_metrics.json       mean and std over folds, and the per-fold table
    cv_report.md          the same as a markdown table
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .config import Config, load_config
from .errors import BadManifest, BadRunDir
from .manifest import load_manifest, save_manifest
from .rundir import RunDir
from .splits import DEFAULT_FRACTIONS, speaker_folds, speaker_holdout

SUMMARY_KEYS = ("accuracy", "uar", "macro_f1", "loss")
# train:validation inside the non-test speakers, as in the default holdout (0.68 : 0.11)
TRAIN_VALIDATION = (DEFAULT_FRACTIONS[0], DEFAULT_FRACTIONS[1], 0.0)


@dataclass
class CVResult:
    """What a cross-validation produced: the summary and where everything was written."""

    out: Path
    mean: dict[str, float]
    std: dict[str, float]
    per_fold: list[dict]


def fold_manifests(df: pd.DataFrame, *, folds: int, seed: int = 0) -> Iterator[pd.DataFrame]:
    """One manifest per fold: test = the fold's speakers, train/validation = the other speakers.

    Every row of ``df`` is used whatever its ``split`` column says. The validation speakers are
    a speaker-disjoint, label-stratified slice of the non-test speakers (``speaker_holdout``).

    Raises:
        BadManifest: rows without a speaker, fewer speakers than folds, or too few speakers left
            to fill both train and validation.
    """
    df = df.reset_index(drop=True)
    missing = df["speaker"].astype(str).str.strip() == ""
    if missing.any():
        raise BadManifest(f"cross-validation needs a speaker for every row; {int(missing.sum())} row(s) "
                          f"have none, e.g. {df.loc[missing, 'path'].iloc[0]}")
    for _, test_idx in speaker_folds(df, folds=folds, seed=seed):
        fold = df.copy()
        rest = fold.drop(index=test_idx)
        fold.loc[rest.index, "split"] = speaker_holdout(rest, fractions=TRAIN_VALIDATION, seed=seed).to_numpy()
        fold.loc[test_idx, "split"] = "test"
        yield fold


def fold_row(fold: int, df: pd.DataFrame, metrics: dict) -> dict:
    """The per-fold table row: fold number, its test speakers, clip count and headline metrics."""
    test = df[df["split"] == "test"]
    row = {"fold": fold, "speakers": sorted(map(str, test["speaker"].unique())), "n": int(metrics["n"])}
    row.update({k: float(metrics[k]) for k in SUMMARY_KEYS if k in metrics})
    return row


def summarise_folds(rows: Sequence[dict], keys: Sequence[str] = SUMMARY_KEYS) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1) of each key over the folds that have it."""
    mean, std = {}, {}
    for key in keys:
        values = np.array([r[key] for r in rows if key in r], dtype=float)
        if values.size:
            mean[key] = float(values.mean())
            std[key] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean, std


def write_cv_outputs(out: Path, rows: Sequence[dict], info: dict, *, title: str) -> CVResult:
    """Write ``cv_metrics.json`` and ``cv_report.md`` for finished folds.

    Args:
        out: The cross-validation folder.
        rows: One :func:`fold_row` per fold.
        info: Extra facts recorded in the JSON and the report (manifest, model, seed, ...).
        title: The report's heading.
    """
    mean, std = summarise_folds(rows)
    payload = {**info, "folds": len(rows), "mean": mean, "std": std, "std_ddof": 1, "per_fold": list(rows)}
    (out / "cv_metrics.json").write_text(json.dumps(payload, indent=2))
    keys = [k for k in SUMMARY_KEYS if k in mean]
    facts = [f"- {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in info.items()]
    lines = [f"# {title}", "", *facts, "",
             "| fold | test speakers | n | " + " | ".join(keys) + " |", "|---|---|---:|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {r['fold']} | {', '.join(r['speakers'])} | {r['n']} | "
                     + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    lines.append("| **mean ± std** | | " + str(sum(r["n"] for r in rows)) + " | "
                 + " | ".join(f"**{mean[k]:.3f} ± {std[k]:.3f}**" for k in keys) + " |")
    lines += ["", f"Standard deviation over {len(rows)} folds (sample, ddof=1). Every fold tests on "
              "speakers that neither its training nor its validation split contains.", ""]
    (out / "cv_report.md").write_text("\n".join(lines))
    return CVResult(out=out, mean=mean, std=std, per_fold=list(rows))


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _run_fold(k: int, fold_df: pd.DataFrame, fold_dir: Path, *, cfg: Config, progress: bool) -> dict:
    """Train and evaluate one fold, picking up where an earlier identical attempt stopped.

    "Identical" means the same fold manifest and the same resolved config (saved as
    ``fold-K/settings.json``): a finished fold is reused, a fold cut off during training resumes
    from its last checkpoint, and a fold made with other settings is refused.

    Raises:
        BadRunDir: ``fold_dir`` holds a fold made from other folds or settings.
    """
    from .evaluate import evaluate
    from .train import train

    manifest_path, settings_path = fold_dir / "manifest.csv", fold_dir / "settings.json"
    run, metrics_path = fold_dir / "run", fold_dir / "eval" / "metrics.json"
    settings = json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str)
    before = [p.read_text() if p.exists() else None for p in (manifest_path, settings_path)]
    fresh = save_manifest(fold_df, fold_dir / "manifest.csv.new")
    same = before == [fresh.read_text(), settings]
    if run.exists() and not same:
        fresh.unlink()
        raise BadRunDir(f"{fold_dir}: holds fold {k} of a cross-validation with other folds or settings; "
                        "choose a new --out")
    fresh.replace(manifest_path)
    settings_path.write_text(settings)
    if same and metrics_path.exists():
        _say(f"fold {k}: already evaluated, reusing {metrics_path}", progress)
        return json.loads(metrics_path.read_text())
    if not RunDir(run).meta.exists():
        resume = bool(run.exists() and RunDir(run).checkpoints())
        train(config=cfg, manifest=manifest_path, out=run, resume=resume, progress=progress)
    return evaluate(runs=[run], manifest=manifest_path, out=fold_dir / "eval", split="test")


def cross_validate(*, config: str | Path | None, manifest: str | Path, folds: int, out: str | Path,
                   model: str | None = None, overrides: Sequence[str] = (), seed: int = 0,
                   progress: bool = True) -> CVResult:
    """Speaker-grouped K-fold cross-validation of the training recipe in ``config``.

    Each fold trains into ``out/fold-K/run`` (K = 1..folds) and is evaluated on its test speakers
    into ``out/fold-K/eval``. Rerunning the same command continues an interrupted
    cross-validation: finished folds are reused and a fold cut off mid-training resumes.

    Args:
        config: Training config YAML (defaults when None).
        manifest: Any manifest; its ``split`` column is ignored.
        folds: Number of folds (at least 2, at most the number of speakers).
        out: Folder for the folds and the summary.
        model: Model override (hub id, directory or size), as for ``train``.
        overrides: ``section.key=value`` overrides, as for ``train``.
        seed: Seed of the fold assignment and of the validation speakers.
        progress: Print a line per fold (and training progress) to stderr.

    Raises:
        BadManifest: missing speakers or too few of them; BadRunDir: ``out`` holds folds made with
            other settings; BadConfig: bad config or overrides.
    """
    out = Path(out)
    cfg = load_config(config, overrides)
    if model:
        cfg.model.name = model
    df = load_manifest(manifest)
    rows = []
    for k, fold_df in enumerate(fold_manifests(df, folds=folds, seed=seed), start=1):
        speakers = sorted(map(str, fold_df.loc[fold_df["split"] == "test", "speaker"].unique()))
        _say(f"fold {k}/{folds}: test speakers {', '.join(speakers)}", progress)
        metrics = _run_fold(k, fold_df, out / f"fold-{k}", cfg=cfg, progress=progress)
        rows.append(fold_row(k, fold_df, metrics))
        _say(f"fold {k}/{folds}: UAR {metrics['uar']:.4f}  accuracy {metrics['accuracy']:.4f}  "
             f"macro-F1 {metrics['macro_f1']:.4f}  (n={metrics['n']})", progress)
    info = {"manifest": str(Path(manifest).resolve()), "config": str(config) if config else "defaults",
            "model": model or "from config", "overrides": list(overrides), "seed": seed}
    return write_cv_outputs(out, rows, info, title=f"{folds}-fold speaker-independent cross-validation")
