"""What the Trainer path and the frozen-feature path share: reading the manifest's splits, the
metrics they report, class weights, and saving a finished run as a run dir."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..config import Config
from ..data.combine import combine_manifests, manifest_list
from ..data.manifest import load_manifest, manifest_fingerprint, manifest_scheme, scheme_file
from ..errors import BadManifest
from ..evaluation.plots import plot_curves
from ..models.backbones import family_of
from ..labels import LabelScheme, get_scheme, infer_scheme, scheme_spec
from ..models.loading import save_trained
from ..modelcard import data_summary, write_model_card
from ..rundir import RunDir, environment, write_meta

SCALAR_METRICS = ("accuracy", "uar", "macro_f1", "majority_accuracy", "emotion_accuracy", "emotion_uar",
                  "intensity_accuracy", "intensity_uar", "ece")


@dataclass
class TrainResult:
    """Where the run went and how it ended."""

    run_dir: Path
    metrics: dict[str, float]
    steps: int
    best_checkpoint: str | None
    primary: bool = True  # False on the other ranks of a data-parallel launch (rank 0 wrote the run)


def scheme_for(cfg: Config, df: pd.DataFrame, manifest: str | Path | None = None) -> LabelScheme:
    """The scheme a run trains with: the config's ``data.scheme``, else the one ``prepare`` recorded
    with the manifest, else exactly the manifest's labels (:func:`~emovox.labels.infer_scheme`).
    ``cfg.data.scheme`` is set to it, so the run's saved config says what was used.

    Raises:
        BadManifest: the manifest holds labels the scheme lacks (all of them named).
        BadLabel: an unknown scheme name in the config.
    """
    recorded = manifest_scheme(manifest) if manifest is not None and not cfg.data.scheme else None
    scheme = get_scheme(cfg.data.scheme) if cfg.data.scheme else recorded or infer_scheme(df["label"])
    outside = sorted(set(df["label"]) - set(scheme.labels))
    if outside:
        where = "data.scheme" if cfg.data.scheme else f"the scheme recorded in {scheme_file(manifest)}"
        raise BadManifest(f"{manifest}: label(s) {', '.join(outside)} are not in {where} {scheme.name!r} "
                          f"({', '.join(scheme.labels)}); name a scheme that holds every label, or leave "
                          "data.scheme unset to use the manifest's own")
    cfg.data.scheme = scheme_spec(scheme)
    return scheme


def training_manifest(manifest: str | Path | Sequence[str | Path], out: str | Path, cfg: Config) -> Path:
    """The one manifest a run reads: ``manifest`` itself, or several combined into ``out/manifest.csv``
    (each keeping its splits and speakers, ``corpus`` per manifest; ``data.balance_corpora`` evens
    out their train rows), so the run dir holds exactly what it trained on.

    Raises:
        BadManifest: an unreadable manifest.
    """
    paths = manifest_list(manifest)
    if len(paths) == 1:
        return paths[0]
    return combine_manifests(paths, Path(out) / "manifest.csv", balance=bool(cfg.data.balance_corpora))


def split_frames(manifest: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All rows, train rows and validation rows of a manifest.

    Raises:
        BadManifest: no train or no validation rows.
    """
    df = load_manifest(manifest)
    train_df, val_df = df[df["split"] == "train"], df[df["split"] == "validation"]
    if train_df.empty or val_df.empty:
        raise BadManifest(f"{manifest}: training needs rows in both the train and validation splits "
                          f"(found {len(train_df)} train, {len(val_df)} validation)")
    return df, train_df.reset_index(drop=True), val_df.reset_index(drop=True)


def with_extra_train(train_df: pd.DataFrame, extra: Sequence[str]) -> pd.DataFrame:
    """Append the train rows of extra manifests (e.g. pseudo-labels) to the training rows."""
    parts = [train_df] + [load_manifest(m, split="train") for m in extra]
    return pd.concat(parts, ignore_index=True) if extra else train_df


def make_compute_metrics(scheme: LabelScheme):
    """``compute_metrics`` for the Trainer: accuracy, UAR, macro-F1 and friends as flat floats."""
    from ..evaluation.metrics import classification_metrics, softmax

    def compute(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        m = classification_metrics(np.asarray(eval_pred.label_ids), softmax(np.asarray(logits)), scheme)
        return {k: float(m[k]) for k in SCALAR_METRICS if k in m}

    return compute


class KeptEvaluations:
    """``compute_metrics`` that also keeps each evaluation's logits and labels by training step,
    so the end of a run reuses the best step's evaluation instead of scoring the validation split
    again (the Trainer evaluates at the last step; the best model is one it already evaluated)."""

    def __init__(self, compute):
        self.compute = compute
        self.step = lambda: -1  # set to the trainer's global step once the Trainer exists
        self.kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        self.kept[int(self.step())] = (np.asarray(logits), np.asarray(eval_pred.label_ids))
        return self.compute(eval_pred)


def class_weights(labels: Sequence[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (N / (C * n_c)); classes absent from training get weight 0."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(float)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


def fold_temperature(model, temperature: float) -> bool:
    """Divide a linear classifier's weights and bias by the temperature, so the saved model itself
    gives calibrated scores (and ``transformers.pipeline`` agrees with ``emovox predict``).
    Returns False for heads whose logits are not linear in the last layer; predict applies it then."""
    head = getattr(model, "classifier", None)
    if type(model).__name__.startswith("Emovox") or not isinstance(head, torch.nn.Linear):
        return False
    with torch.no_grad():
        head.weight /= temperature
        head.bias /= temperature
    return True


def save_run(trainer, fe, cfg: Config, scheme: LabelScheme, df: pd.DataFrame, manifest, out: Path,
              metrics: dict, seconds: float) -> None:
    """Write the run dir: model (temperature folded in where the head allows), feature extractor,
    resolved config, metrics, curves, ``emovox.json`` and the model card (``README.md``). ``trainer`` needs only ``.model`` and
    ``.state`` (a Trainer, or the frozen-feature path's stand-in)."""

    run = RunDir(out)
    in_weights = fold_temperature(trainer.model, metrics.get("temperature", 1.0))
    # the training length: Whisper's saved window, which transformers.pipeline pads every clip to
    family_of(trainer.model).prepare_to_save(trainer.model, fe, window_seconds=float(cfg.data.max_seconds))
    save_trained(trainer.model, out)  # any head; LoRA merged; needs only trainer.model and trainer.state
    fe.save_pretrained(str(out))
    cfg.save(run.config)
    run.metrics.write_text(json.dumps(metrics, indent=2))
    plot_curves(trainer.state.log_history, run.curves)
    write_meta(run, {
        "scheme": scheme.to_dict(),
        "config": cfg.to_dict(),
        "model_source": cfg.model.name,
        "max_seconds": cfg.data.max_seconds,
        "manifest": str(Path(manifest).resolve()),
        "manifest_fingerprint": manifest_fingerprint(df),
        "seed": cfg.seed,
        "temperature": metrics.get("temperature", 1.0),
        "temperature_in_weights": in_weights,
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": trainer.state.best_metric,
        "train_seconds": round(seconds, 1),
        "environment": environment(),
        "data": data_summary(df, manifest=manifest),
    })
    write_model_card(out)
