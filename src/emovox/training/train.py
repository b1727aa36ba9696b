"""Training with the Hugging Face ``Trainer``: wiring, callbacks, resume, and the run dir."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import EXTRA_TRAINING_KEYS, LEGACY_TRAINING_KEYS, Config, load_config
from ..data.augment import build_augment
from ..data.dataset import AudioDataset, LengthGroupedSampler, PadCollator
from ..errors import BadConfig, BadRunDir
from ..models.backbones import family_of
from ..models.loading import load_model
from ..models.tuning import param_groups
from ..rundir import RunDir
from .common import (KeptEvaluations, TrainResult, class_weights, make_compute_metrics, save_run, scheme_for,
                     split_frames, training_manifest, with_extra_train)
from .features import train_head_on_features
from .runlock import holds_run_lock, resumable_checkpoints
from .upper_tuning import train_upper_layers


def trainer_class():
    from transformers import Trainer

    class EmovoxTrainer(Trainer):
        """Trainer with manifest-length batching, a seedable loader and an optional weighted loss."""

        class_weights: torch.Tensor | None = None
        lengths: Sequence[int] = ()
        group_by_length_ours: bool = True
        balanced_sampling: bool = False
        head_learning_rate: float | None = None

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # The loss is a mean over the batch, whatever the forward's **kwargs suggest: transformers'
            # token-count normalisation (loss x world size, no division by accumulation steps) is for
            # language models, and would double the loss and gradients of a 2-process run.
            self.model_accepts_loss_kwargs = False

        def create_optimizer(self):
            if self.optimizer is None and self.head_learning_rate is not None:  # two learning rates
                cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = cls(param_groups(self.model, self.args.learning_rate, self.head_learning_rate,
                                                  self.args.weight_decay), **kwargs)
            return super().create_optimizer()

        def get_train_dataloader(self):
            from torch.utils.data import DataLoader

            ds = self.train_dataset
            ds.trace_loads(self.args.process_index)
            weights = balanced_weights(ds.labels) if self.balanced_sampling else None
            # each rank takes its share of the same global batches (see LengthGroupedSampler)
            sampler = LengthGroupedSampler(ds.lengths, self._train_batch_size, seed=self.args.seed,
                                           group=self.group_by_length_ours, dataset=ds, weights=weights,
                                           num_replicas=self.args.world_size, rank=self.args.process_index,
                                           drop_last=self.args.dataloader_drop_last)
            loader = DataLoader(ds, batch_sampler=sampler, collate_fn=self.data_collator,
                                num_workers=self.args.dataloader_num_workers,
                                generator=torch.Generator().manual_seed(self.args.seed), persistent_workers=False)
            return unsharded(self.accelerator, loader)

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


def unsharded(accelerator, loader):
    """The loader prepared by accelerate (device placement, epoch forwarding, batch skipping on
    resume) without accelerate's own sharding: in a multi-process launch ``accelerator.prepare``
    would deal the (already per-rank) batches out again, round-robin, and pad the last round with
    repeated clips."""
    if accelerator.num_processes == 1:
        return accelerator.prepare(loader)
    from accelerate.data_loader import prepare_data_loader

    return prepare_data_loader(loader, accelerator.device, num_processes=1, process_index=0,
                               put_on_device=True, dispatch_batches=False)


def balanced_weights(labels: Sequence[int]) -> np.ndarray:
    """Per-clip sampling weights that make every class equally likely (1 / class count)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    return 1.0 / counts[labels]


def trainer_kwargs(training: dict[str, Any]) -> dict[str, Any]:
    """``training.*`` as the installed transformers names it: keys that transformers 5 dropped
    (``warmup_ratio``, ``evaluation_strategy``, ``no_cuda``, ``overwrite_output_dir``) are
    translated where the release lacks them, so one config runs on 4.x and 5.x."""
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs = {k: v for k, v in training.items() if k not in EXTRA_TRAINING_KEYS}
    for old, new in LEGACY_TRAINING_KEYS.items():
        if old not in kwargs or old in fields:
            continue
        value = kwargs.pop(old)
        if old == "warmup_ratio":  # transformers 5: a float warmup_steps below 1 is a ratio
            if value and not kwargs.get("warmup_steps"):
                kwargs["warmup_steps"] = float(value)
        elif new and value is not None:
            kwargs.setdefault(new, value)
    return kwargs


def training_arguments(cfg: Config, out: Path, *, progress: bool):
    """TrainingArguments from ``training.*``, with the settings emovox relies on fixed."""
    from transformers import TrainingArguments

    kwargs = trainer_kwargs(cfg.training)
    kwargs.update(bf16=use_bf16(cfg.training), dataloader_num_workers=loader_workers(cfg.training))
    metric = str(kwargs.get("metric_for_best_model") or "eval_loss")
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    kwargs.update(
        output_dir=str(out), report_to="none",  # tensorboard: our own callback, at a fixed folder
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


def use_bf16(training: dict[str, Any]) -> bool:
    """``training.bf16``: true, false, or ``auto`` (bf16 autocast where a CUDA device supports it; a
    CPU run stays fp32, as without the key)."""
    value = training.get("bf16", False)
    if value == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if not isinstance(value, bool):
        raise BadConfig(f"training.bf16 must be true, false or auto, not {value!r}")
    return value


def loader_workers(training: dict[str, Any]) -> int:
    """``training.dataloader_num_workers``: a count, or ``auto`` (on a CUDA machine, up to 4 loader
    processes, leaving a core to the training loop; on a CPU 0, so clips are prepared by the
    prefetch thread beside the model's own threads)."""
    value = training.get("dataloader_num_workers") or 0
    if value == "auto":
        import os

        return min(4, max(0, (os.cpu_count() or 1) - 1)) if torch.cuda.is_available() else 0
    try:
        workers = int(value)
    except (TypeError, ValueError):
        workers = -1
    if workers < 0:
        raise BadConfig(f"training.dataloader_num_workers must be a count >= 0 or auto, not {value!r}")
    return workers


def tensorboard_callback(folder: Path, *, main: bool = True):
    """Transformers' TensorBoard callback writing to the run dir's ``tensorboard/`` (transformers 5
    dropped ``logging_dir``; a writer given to the callback works on every release). Only the
    main process of a data-parallel launch opens a writer (the callback skips the others)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder)) if main else None)


@holds_run_lock("train")
def train(*, config: Config | str | Path | None = None, manifest: str | Path | Sequence[str | Path], out: str | Path,
          model: str | None = None, resume: bool = False, overrides: Sequence[str] = (),
          progress: bool = True, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune an encoder on a manifest's train split, early-stopped on its validation split.

    ``callbacks`` are extra ``TrainerCallback`` objects (e.g. Optuna pruning in ``search``).
    Several manifests train one model on all of them: they are combined into ``out/manifest.csv``
    (each keeping its splits and speakers, with a ``corpus`` column; ``data.balance_corpora``
    evens out their train rows).

    Returns:
        A :class:`TrainResult`: the run dir (model, feature extractor, ``emovox.json``, model
        card), the final validation metrics (``eval_uar``, ...), steps and the best checkpoint.

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
    manifest = training_manifest(manifest, out, cfg)
    if cfg.model.freeze_backbone and cfg.model.cache_features and cfg.model.tune_upper_layers:
        return train_upper_layers(cfg=cfg, manifest=manifest, out=out, progress=progress)  # cached lower layers
    if cfg.model.freeze_backbone and cfg.model.cache_features:  # head only, on cached features
        return train_head_on_features(cfg=cfg, manifest=manifest, out=out, progress=progress)
    out = Path(out)
    checkpoint = _resume_point(out, resume)
    df, train_df, val_df = split_frames(manifest)
    train_df = with_extra_train(train_df, cfg.data.extra_train)
    scheme = scheme_for(cfg, df, manifest)
    net, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    family = family_of(net)
    augment = build_augment(cfg.augment)
    datasets = [AudioDataset(part, scheme, lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                             cache=cfg.data.cache_audio, input_name=family.input_name, seed=cfg.seed,
                             augment=augment if part is train_df else None,
                             prefetch=prefetch_depth(cfg, augment) if part is train_df else 0)
                for part in (train_df, val_df)]
    args = training_arguments(cfg, out, progress=progress)
    callbacks = [JsonlLogCallback(RunDir(out).log), tensorboard_callback(RunDir(out).tensorboard,
                                                                        main=args.process_index == 0), *callbacks]
    patience = int(cfg.training.get("early_stopping_patience") or 0)
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(patience, float(cfg.training.get("early_stopping_threshold", 0.0))))
    trainer = trainer_class()(model=net, args=args, train_dataset=datasets[0], eval_dataset=datasets[1],
                               data_collator=PadCollator(attention_mask=family.uses_attention_mask(fe),
                                                         input_name=family.input_name),
                               compute_metrics=(kept := KeptEvaluations(make_compute_metrics(scheme))),
                               callbacks=callbacks)
    kept.step = lambda: trainer.state.global_step
    trainer.group_by_length_ours = cfg.data.group_by_length
    trainer.balanced_sampling = bool(cfg.training.get("balanced_sampling"))
    head_lr = cfg.training.get("head_learning_rate")
    trainer.head_learning_rate = None if head_lr is None else float(head_lr)
    if cfg.training.get("class_weighted_loss"):
        trainer.class_weights = class_weights(datasets[0].labels, len(scheme))
    started = time.time()
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics, temperature = final_validation(trainer, datasets[1], kept)  # every rank: the Trainer gathers
    metrics["temperature"] = temperature
    main = trainer.is_world_process_zero()
    if main:  # data-parallel: rank 0 alone writes the run dir; the others wait for it
        save_run(trainer, fe, cfg, scheme, df, manifest, out, metrics, time.time() - started)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(out, metrics, trainer.state.global_step, trainer.state.best_model_checkpoint, primary=main)


def prefetch_depth(cfg: Config, augment: Any = None) -> int:
    """Training clips to prepare ahead (decoded, augmented, featurized) in a background thread
    while the model computes: ``data.prefetch``, except with loader workers (they prefetch
    themselves). Augmentation draws from generators of its own, seeded per (seed, epoch, clip)
    (``data.augment.Augmenter``), so it runs ahead too and a run stays reproducible: the model's
    SpecAugment masks draw from NumPy's global RNG in the training thread, undisturbed."""
    if loader_workers(cfg.training):
        return 0
    return int(cfg.data.prefetch)


def final_validation(trainer, dataset, kept: KeptEvaluations | None = None) -> tuple[dict[str, float], float]:
    """The best model's validation metrics and the temperature fitted on the same logits: the
    evaluation the Trainer already ran on that model (``kept``) when there is one, else one pass.

    The temperature is stored in emovox.json and applied by predict and evaluate (or folded into
    the classifier): top-1 never changes, the scores become calibrated probabilities.
    """
    from ..evaluation.metrics import fit_temperature

    state = trainer.state
    best = state.best_model_checkpoint
    step = int(str(best).rsplit("-", 1)[-1]) if best else state.global_step
    logged = [e for e in state.log_history if e.get("step") == step and "eval_loss" in e]
    if kept is not None and step in kept.kept and logged:
        logits, labels = kept.kept[step]
        metrics = {k: v for k, v in logged[-1].items() if k.startswith("eval_")}
    else:
        out = trainer.predict(dataset, metric_key_prefix="eval")
        logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
        labels, metrics = out.label_ids, dict(out.metrics)
    metrics["epoch"] = state.epoch
    metrics["eval_n"] = int(len(labels))
    return metrics, round(float(fit_temperature(np.asarray(logits), np.asarray(labels))), 4)


def _resume_point(out: Path, resume: bool) -> str | None:
    """The last complete checkpoint to resume from, or None for a fresh run. Checkpoints cut short
    (a kill or a full disk mid-save) are skipped with a warning; when every one is, a resumed
    run starts over (seeded, so it ends where an uninterrupted run ends)."""
    done = resumable_checkpoints(out) if out.exists() else []
    if resume and not done and any(out.glob("checkpoint-*")):
        import logging

        logging.getLogger("emovox").warning("%s: no complete checkpoint to resume from; starting over", out)
        return None
    if resume and not done:
        raise BadRunDir(f"{out}: --resume needs a complete checkpoint-N folder there; none found")
    if not resume and any(out.glob("checkpoint-*")):
        raise BadRunDir(f"{out}: holds checkpoints of an earlier run; pass --resume to continue it or choose a new --out")
    return str(done[-1]) if resume else None


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
