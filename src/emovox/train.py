"""Training with the Hugging Face ``Trainer``: wiring, metrics, callbacks, resume, run dir."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .augment import build_augment
from .config import EXTRA_TRAINING_KEYS, Config, load_config
from .data import AudioDataset, LengthGroupedSampler, PadCollator
from .errors import BadConfig, BadManifest
from .labels import LabelScheme, get_scheme, infer_scheme
from .manifest import load_manifest, manifest_fingerprint
from .models import load_model, param_groups, save_trained, uses_attention_mask
from .rundir import RunDir, environment, write_meta

SCALAR_METRICS = ("accuracy", "uar", "macro_f1", "majority_accuracy", "emotion_accuracy", "emotion_uar",
                  "intensity_accuracy", "intensity_uar", "ece")


@dataclass
class TrainResult:
    """Where the run went and how it ended."""

    run_dir: Path
    metrics: dict[str, float]
    steps: int
    best_checkpoint: str | None


def scheme_for(cfg: Config, df: pd.DataFrame) -> LabelScheme:
    """The configured scheme, else the one the manifest's labels imply."""
    return get_scheme(cfg.data.scheme) if cfg.data.scheme else infer_scheme(df["label"])


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
    from .metrics import classification_metrics, softmax

    def compute(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        m = classification_metrics(np.asarray(eval_pred.label_ids), softmax(np.asarray(logits)), scheme)
        return {k: float(m[k]) for k in SCALAR_METRICS if k in m}

    return compute


def _trainer_class():
    from transformers import Trainer

    class EmovoxTrainer(Trainer):
        """Trainer with manifest-length batching, a seedable loader and an optional weighted loss."""

        class_weights: torch.Tensor | None = None
        lengths: Sequence[int] = ()
        group_by_length_ours: bool = True
        balanced_sampling: bool = False
        head_learning_rate: float | None = None

        def create_optimizer(self):
            if self.optimizer is None and self.head_learning_rate is not None:  # two learning rates
                cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = cls(param_groups(self.model, self.args.learning_rate, self.head_learning_rate,
                                                  self.args.weight_decay), **kwargs)
            return super().create_optimizer()

        def get_train_dataloader(self):
            from torch.utils.data import DataLoader

            ds = self.train_dataset
            weights = balanced_weights(ds.labels) if self.balanced_sampling else None
            sampler = LengthGroupedSampler(ds.lengths, self._train_batch_size, seed=self.args.seed,
                                           group=self.group_by_length_ours, dataset=ds, weights=weights)
            loader = DataLoader(ds, batch_size=self._train_batch_size, sampler=sampler,
                                collate_fn=self.data_collator, num_workers=self.args.dataloader_num_workers,
                                generator=torch.Generator().manual_seed(self.args.seed),
                                persistent_workers=False, drop_last=self.args.dataloader_drop_last)
            return self.accelerator.prepare(loader)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.class_weights is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(
                outputs.logits, labels, weight=self.class_weights.to(outputs.logits.device),
                label_smoothing=self.args.label_smoothing_factor)
            return (loss, outputs) if return_outputs else loss

    return EmovoxTrainer


def balanced_weights(labels: Sequence[int]) -> np.ndarray:
    """Per-clip sampling weights that make every class equally likely (1 / class count)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    return 1.0 / counts[labels]


def class_weights(labels: Sequence[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (N / (C * n_c)); classes absent from training get weight 0."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(float)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


def training_arguments(cfg: Config, out: Path, *, progress: bool):
    """TrainingArguments from ``training.*``, with the settings emovox relies on fixed."""
    from transformers import TrainingArguments

    kwargs = {k: v for k, v in cfg.training.items() if k not in EXTRA_TRAINING_KEYS}
    metric = str(kwargs.get("metric_for_best_model") or "eval_loss")
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    kwargs.update(
        output_dir=str(out), logging_dir=str(RunDir(out).tensorboard), report_to=["tensorboard"],
        remove_unused_columns=False, load_best_model_at_end=True, metric_for_best_model=metric,
        greater_is_better=not metric.endswith("loss"), save_strategy=kwargs.get("eval_strategy", "steps"),
        disable_tqdm=not progress, use_cpu=not torch.cuda.is_available() or kwargs.get("use_cpu", False),
    )
    if kwargs["save_strategy"] == "steps":
        kwargs["save_steps"] = kwargs.get("eval_steps") or kwargs.get("save_steps", 500)
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BadConfig(f"training.* settings rejected by transformers: {str(exc).splitlines()[0]}") from None


def train(*, config: Config | str | Path | None = None, manifest: str | Path, out: str | Path,
          model: str | None = None, resume: bool = False, overrides: Sequence[str] = (),
          progress: bool = True, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune an encoder on a manifest's train split, early-stopped on its validation split.

    ``callbacks`` are extra ``TrainerCallback`` objects (e.g. Optuna pruning in ``search``).

    Raises:
        BadConfig: bad settings or model; BadManifest: missing splits or labels outside the scheme;
        BadRunDir: ``out`` holds checkpoints and ``resume`` is off.
    """
    from transformers import EarlyStoppingCallback

    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    if model:
        cfg.model.name = model
    if cfg.model.multitask and (cfg.training.get("class_weighted_loss") or cfg.training.get("label_smoothing_factor")):
        raise BadConfig("model.multitask has its own three-part loss; it cannot be combined with "
                        "training.class_weighted_loss or training.label_smoothing_factor (use balanced_sampling)")
    if cfg.model.freeze_backbone and cfg.model.cache_features:  # head only, on cached features
        from .features import train_head_on_features
        return train_head_on_features(cfg=cfg, manifest=manifest, out=out, progress=progress)
    out = Path(out)
    checkpoint = _resume_point(out, resume)
    df, train_df, val_df = split_frames(manifest)
    train_df = with_extra_train(train_df, cfg.data.extra_train)
    scheme = scheme_for(cfg, df)
    net, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed)
    datasets = [AudioDataset(part, scheme, fe, max_seconds=cfg.data.max_seconds, cache=cfg.data.cache_audio,
                             augment=build_augment(cfg.augment) if part is train_df else None, seed=cfg.seed)
                for part in (train_df, val_df)]
    args = training_arguments(cfg, out, progress=progress)
    callbacks = [JsonlLogCallback(RunDir(out).log), *callbacks]
    patience = int(cfg.training.get("early_stopping_patience") or 0)
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(patience, float(cfg.training.get("early_stopping_threshold", 0.0))))
    trainer = _trainer_class()(model=net, args=args, train_dataset=datasets[0], eval_dataset=datasets[1],
                               data_collator=PadCollator(attention_mask=uses_attention_mask(fe)),
                               compute_metrics=make_compute_metrics(scheme), callbacks=callbacks)
    trainer.group_by_length_ours = cfg.data.group_by_length
    trainer.balanced_sampling = bool(cfg.training.get("balanced_sampling"))
    head_lr = cfg.training.get("head_learning_rate")
    trainer.head_learning_rate = None if head_lr is None else float(head_lr)
    if cfg.training.get("class_weighted_loss"):
        trainer.class_weights = class_weights(datasets[0].labels, len(scheme))
    started = time.time()
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics = trainer.evaluate()
    metrics["temperature"] = validation_temperature(trainer, datasets[1])
    _save_run(trainer, fe, cfg, scheme, df, manifest, out, metrics, time.time() - started)
    return TrainResult(out, metrics, trainer.state.global_step, trainer.state.best_model_checkpoint)


def validation_temperature(trainer, dataset) -> float:
    """Temperature scaling fitted on the validation split's logits (1.0 means none is needed).

    Stored in emovox.json and applied by predict and evaluate: top-1 never changes, the scores
    become calibrated probabilities.
    """
    from .metrics import fit_temperature

    out = trainer.predict(dataset)
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return round(float(fit_temperature(np.asarray(logits), np.asarray(out.label_ids))), 4)


def fold_temperature(model, temperature: float) -> bool:
    """Divide a linear classifier's weights and bias by the temperature, so the saved model itself
    gives calibrated scores (and ``transformers.pipeline`` agrees with ``emovox predict``).
    Returns False for heads whose logits are not linear in the last layer; predict applies it then."""
    import torch

    head = getattr(model, "classifier", None)
    if type(model).__name__.startswith("Emovox") or not isinstance(head, torch.nn.Linear):
        return False
    with torch.no_grad():
        head.weight /= temperature
        head.bias /= temperature
    return True


def _resume_point(out: Path, resume: bool) -> str | None:
    """The last complete checkpoint to resume from, or None for a fresh run."""
    from .errors import BadRunDir

    done = RunDir(out).checkpoints() if out.exists() else []
    if resume and not done:
        raise BadRunDir(f"{out}: --resume needs a complete checkpoint-N folder there; none found")
    if done and not resume:
        raise BadRunDir(f"{out}: holds checkpoints of an earlier run; pass --resume to continue it or choose a new --out")
    return str(done[-1]) if resume else None


def _save_run(trainer, fe, cfg: Config, scheme: LabelScheme, df: pd.DataFrame, manifest, out: Path,
              metrics: dict, seconds: float) -> None:
    from .plots import plot_curves

    run = RunDir(out)
    in_weights = fold_temperature(trainer.model, metrics.get("temperature", 1.0))
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
    })


def _log_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class JsonlLogCallback(_log_callback_base()):
    """Appends every Trainer log entry (train loss, eval metrics) to a JSONL file."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if state.is_world_process_zero and logs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")
