"""Speaker-grouped K-fold cross-validation: one training run per fold, scored on unseen speakers.

A single speaker-independent holdout on a 16-speaker corpus puts 3 speakers in test, so its UAR
swings by several points with the choice of speakers. Cross-validation tests on every speaker
once and reports mean ± std over folds. The fold layout (``data.splits.fold_manifests``) and the summary
(``evaluation.cv_report``) are shared with the eGeMAPS baseline.

Layout of ``out``::

    fold-K/manifest.csv   the fold's manifest (test = the fold's speakers)
    fold-K/run/           the training run
    fold-K/eval/          ``evaluate`` on the fold's test split
    confirm/              with ``confirm``: the run trained on the manifest's own train and
                          validation splits, and ``eval/`` on its test split (held out of every fold)
    cv_metrics.json       mean and std over folds, the per-fold table (and the confirmation)
    cv_report.md          the same as a markdown table
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from .runlock import holds_run_lock
from ..config import Config, load_config
from ..data.manifest import load_manifest, save_manifest
from ..data.fold_plan import resolve_folds as fold_plan
from ..data.splits import fold_manifests, held_for_confirmation
from ..errors import BadRunDir
from ..evaluation.cv_report import CVResult, fold_row, write_cv_outputs
from ..rundir import RunDir
from .common import scheme_for, training_manifest


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
    from ..evaluation.evaluate import evaluate
    from .train import train

    manifest_path, settings_path = fold_dir / "manifest.csv", fold_dir / "settings.json"
    run, metrics_path = fold_dir / "run", fold_dir / "eval" / "metrics.json"
    settings = json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str)
    before = [p.read_text() if p.exists() else None for p in (manifest_path, settings_path)]
    fresh = save_manifest(fold_df, fold_dir / "manifest.csv.new")
    same = before == [fresh.read_text(), settings]
    if run.exists() and not same:
        fresh.unlink()
        raise BadRunDir(f"{fold_dir}: holds {f'fold {k}' if k else 'the confirmation run'} of a cross-validation "
                        "with other folds or settings; choose a new --out")
    fresh.replace(manifest_path)
    settings_path.write_text(settings)
    if same and metrics_path.exists():
        _say(f"fold {k}: already evaluated, reusing {metrics_path}", progress)
        return json.loads(metrics_path.read_text())
    if not RunDir(run).meta.exists():
        resume = bool(run.exists() and RunDir(run).checkpoints())
        train(config=cfg, manifest=manifest_path, out=run, resume=resume, progress=progress)
    return evaluate(runs=[run], manifest=manifest_path, out=fold_dir / "eval", split="test")


@holds_run_lock("cv")
def cross_validate(*, config: str | Path | None = None, manifest: str | Path | Sequence[str | Path],
                   folds: int | None = None, out: str | Path, fold_speakers: str | Path | None = None,
                   fold_by: str | None = None, model: str | None = None, overrides: Sequence[str] = (), seed: int = 0,
                   confirm: bool = False, baseline: bool = False, progress: bool = True) -> CVResult:
    """Speaker-grouped K-fold cross-validation of the training recipe in ``config``.

    Each fold trains into ``out/fold-K/run`` (K = 1..folds) and is evaluated on its test speakers
    into ``out/fold-K/eval``. Rerunning the same command continues an interrupted
    cross-validation: finished folds are reused and a fold cut off mid-training resumes.

    Args:
        config: Training config YAML (defaults when None).
        manifest: Any manifest, or several (combined as ``train`` does: folds then mix corpora);
            its ``split`` column is ignored.
        folds: Number of folds (at least 2, at most the number of speakers; default 5).
        out: Folder for the folds and the summary.
        fold_speakers, fold_by: Folds as a protocol fixes them instead (``data.fold_plan``): the
            test speakers of each fold (``"A,B;C,D"`` or a file), or one fold per value of a column.
        model: Model override (hub id, directory or size), as for ``train``.
        overrides: ``section.key=value`` overrides, as for ``train``.
        seed: Seed of the fold assignment and of the validation speakers.
        confirm: Choose on some speakers, confirm on others: the manifest's test speakers take no
            part in the folds (the selection number is the folds' mean over the other speakers);
            after the folds, one run trains on the manifest's own train and validation splits and
            is scored once on its test split (the confirmation, reported beside the mean).
        baseline: Also run the eGeMAPS baseline on exactly these folds (``out/egemaps``) and report
            it beside the recipe, with chance.
        progress: Print a line per fold (and training progress) to stderr.

    Raises:
        BadManifest: missing speakers or too few of them, or ``confirm`` without a test split;
            BadRunDir: ``out`` holds folds made with other settings; BadConfig: bad config or overrides.
    """
    out = Path(out)
    cfg = load_config(config, overrides)
    if model:
        cfg.model.name = model
    manifest = training_manifest(manifest, out, cfg)  # several: combined into out/manifest.csv
    df = load_manifest(manifest)
    scheme = scheme_for(cfg, df, manifest)  # every fold trains on the manifest's scheme, not on its own labels
    held = df[held_for_confirmation(df, manifest)] if confirm else df.iloc[:0]
    plan = fold_plan(df, folds=folds, fold_speakers=fold_speakers, fold_by=fold_by,
                     held=set(held["speaker"].astype(str)))
    n_folds, rows = plan if isinstance(plan, int) else len(plan), []
    for k, fold_df in enumerate(fold_manifests(df.drop(index=held.index), folds=plan, seed=seed), start=1):
        speakers = sorted(map(str, fold_df.loc[fold_df["split"] == "test", "speaker"].unique()))
        _say(f"fold {k}/{n_folds}: test speakers {', '.join(speakers)}", progress)
        metrics = _run_fold(k, fold_df, out / f"fold-{k}", cfg=cfg, progress=progress)
        rows.append(fold_row(k, fold_df, metrics))
        _say(f"fold {k}/{n_folds}: UAR {metrics['uar']:.4f}  accuracy {metrics['accuracy']:.4f}  "
             f"macro-F1 {metrics['macro_f1']:.4f}  (n={metrics['n']})", progress)
    info = {"manifest": str(Path(manifest).resolve()), "config": str(config) if config else "defaults",
            "model": model or "from config", "overrides": list(overrides), "seed": seed,
            "fold_plan": "seeded" if isinstance(plan, int) else "given"}
    confirmation = None
    if confirm:
        speakers = sorted(map(str, held["speaker"].unique()))
        _say(f"confirmation: trained on the manifest's train + validation, scored once on {', '.join(speakers)}",
             progress)
        confirmation = fold_row("confirmation", df, _run_fold(0, df, out / "confirm", cfg=cfg, progress=progress))
        _say(f"confirmation: UAR {confirmation['uar']:.4f}  accuracy {confirmation['accuracy']:.4f}", progress)
    beside = {"eGeMAPS + logistic regression": _baseline(manifest, out, rows, scheme, seed=seed, confirm=confirm,
                                                          progress=progress)} if baseline else None
    return write_cv_outputs(out, rows, info, title=f"{n_folds}-fold speaker-independent cross-validation"
                            + ("" if isinstance(plan, int) else " (given folds)"),
                            confirmation=confirmation, beside=beside, chance=1.0 / len(scheme))


def _baseline(manifest: Path, out: Path, rows: list[dict], scheme, *, seed: int, confirm: bool,
              progress: bool) -> CVResult:
    """The eGeMAPS baseline on the folds ``rows`` tested (their speakers, written to
    ``out/egemaps/folds.json``), the same validation speakers and the same confirmation."""
    from ..evaluation.baseline import cross_validate_baseline

    folds = out / "egemaps" / "folds.json"
    folds.parent.mkdir(parents=True, exist_ok=True)
    folds.write_text(json.dumps([r["speakers"] for r in rows]))
    _say("eGeMAPS baseline on the same folds", progress)
    return cross_validate_baseline(manifest=manifest, out=folds.parent, fold_speakers=folds, seed=seed, confirm=confirm,
                                   scheme=",".join(scheme.labels), progress=progress)
