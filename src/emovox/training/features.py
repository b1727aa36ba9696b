"""The frozen-feature fast path: with ``model.freeze_backbone`` (and ``model.cache_features``, on by
default), each clip is encoded once by the frozen backbone into per-layer utterance statistics
[2, layers + 2, hidden] (frame means and standard deviations), cached on disk, and only the head trains on those vectors — minutes instead of
hours on a CPU.

Because the layer mix, the projector and mean pooling are affine, a head trained on per-layer means
(or, with stats pooling, on the statistics themselves) computes exactly what the full model computes on the clip (``models.heads.pooled_logits``), so the result
is saved as an ordinary run dir: backbone + trained head, loaded by ``models.loading.load_trained``.
The head trains on standardised features (``training.feature_scaling``), folded into its weights
afterwards, so the saved model runs on raw features (and raw audio) exactly as trained. A
stats-pooling head (``model.pooling=stats``: every layer's frame means and standard deviations)
is exact on this path too. Two solvers: AdamW with early stopping on validation (the Trainer's
rules), or a one-shot fit with an L2 penalty (``training.head_l2``): full-batch L-BFGS on the
head's own loss (``training.head_solver=lbfgs``) or a ridge probe (``ridge``), both in
``training.head_solvers``, optionally refitted on train + validation (``training.head_refit``).
Augmentation applies as augmented copies (``augment.feature_copies``) and channel-degraded copies
(``augment.channel_copies``: ``training.channel_copies``), each encoded once and cached; there are
no checkpoints to resume from: a rerun reads the cache and refits the head.

The cache itself is ``training.feature_cache``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..data.augment import build_augment
from ..data.dataset import AudioDataset
from ..errors import BadConfig
from ..evaluation.metrics import fit_temperature
from ..labels import LabelScheme
from ..models.backbones import family_of
from ..models.loading import load_model
from ..models.tuning import param_groups
from ..rundir import RunDir
from .common import TrainResult, make_compute_metrics, save_run, scheme_for, split_frames, with_extra_train
from .distributed import barrier, start_group
from .channel_copies import channel_augment, check_channel
from .feature_cache import cache_root, cached_features
from .feature_scaling import UNSCALED_HEAD, head_params, save_unscaled_head, scaler_for, standardise_by_group
from .head_solvers import evaluate_head, fit_head_lbfgs, fit_head_ridge, head_loss


def schedule_of(cfg: Config, n_train: int) -> dict[str, Any]:
    """Steps, batch size, evaluation and logging cadence from ``training.*`` (Trainer semantics)."""
    t = cfg.training
    batch = int(t.get("per_device_train_batch_size") or 4)
    per_epoch = max(1, math.ceil(n_train / batch))
    max_steps = int(t.get("max_steps") or -1)
    total = max_steps if max_steps > 0 else max(1, math.ceil(float(t.get("num_train_epochs") or 1) * per_epoch))
    by_steps = str(t.get("eval_strategy") or "steps") == "steps"
    metric = str(t.get("metric_for_best_model") or "eval_loss")
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    return dict(batch=batch, per_epoch=per_epoch, total=total, metric=metric, lower=metric.endswith("loss"),
                eval_every=int(t.get("eval_steps") or per_epoch) if by_steps else per_epoch,
                log_every=max(1, int(t.get("logging_steps") or per_epoch)),
                patience=int(t.get("early_stopping_patience") or 0),
                threshold=float(t.get("early_stopping_threshold") or 0.0))


def _optimizer(model: torch.nn.Module, cfg: Config, total: int):
    """AdamW over the head's parameter groups and the configured learning-rate schedule.

    Raises:
        BadConfig: a schedule this loop cannot drive.
    """
    from transformers import get_scheduler

    t = cfg.training
    lr = float(t.get("learning_rate") or 3e-5)
    head_lr = t.get("head_learning_rate")
    opt = torch.optim.AdamW(param_groups(model, lr, None if head_lr is None else float(head_lr),
                                         float(t.get("weight_decay") or 0.0)))
    steps = float(t.get("warmup_steps") or 0)  # transformers 5: below 1 it is a ratio
    warmup = int(steps) if steps >= 1 else math.ceil((steps or float(t.get("warmup_ratio") or 0.0)) * total)
    name = str(t.get("lr_scheduler_type") or "linear")
    try:
        if name == "reduce_lr_on_plateau":
            raise ValueError("it steps on validation metrics, which the cached-feature loop does not pass")
        return opt, get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total)
    except (ValueError, TypeError) as exc:
        raise BadConfig(f"training.lr_scheduler_type={name!r} cannot train on cached features: "
                        f"{str(exc).splitlines()[0]} (e.g. linear, cosine, constant_with_warmup)") from None


class BestEvaluation:
    """Tracks the best evaluation (Trainer's early-stopping rule) and keeps its head weights."""

    def __init__(self, params: dict[str, torch.Tensor], sched: dict[str, Any]):
        self.params, self.metric, self.lower = params, sched["metric"], sched["lower"]
        self.threshold, self.patience = sched["threshold"], sched["patience"] or math.inf
        self.value: float | None = None
        self.stale = 0
        self.saved = {n: p.detach().clone() for n, p in params.items()}

    @property
    def stop(self) -> bool:
        """Patience used up."""
        return self.stale >= self.patience

    def update(self, metrics: dict[str, float]) -> None:
        """Record an evaluation; keep the weights when it improves by more than the threshold."""
        value = metrics[self.metric]
        gain = math.inf if self.value is None else (self.value - value if self.lower else value - self.value)
        if gain > self.threshold:
            self.value, self.stale = value, 0
            self.saved = {n: p.detach().clone() for n, p in self.params.items()}
        else:
            self.stale += 1

    def restore(self) -> None:
        """Put the best evaluation's weights back."""
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.saved[n])


def run_steps(*, batches, loss_of, evaluate, model: torch.nn.Module, opt, sched, best: BestEvaluation,
              schedule: dict[str, Any], log_path: Path, lr_group: int = -1) -> tuple[list[dict[str, Any]], int]:
    """The gradient-step loop of the paths that train outside the Trainer: ``batches()`` (called
    once per epoch) gives the batches, ``loss_of(batch)`` the loss to step on; the mean loss is
    logged every ``log_every`` steps, ``evaluate()`` (in eval mode) every ``eval_every`` steps and at
    the end, until the schedule's total or early stopping; the best evaluation's weights are
    restored. Each log row is also appended to ``log_path`` as JSON.

    Returns:
        The log rows and the number of steps taken.
    """
    s, rows, running, step = schedule, [], [], 0

    def log(row: dict[str, Any]) -> None:
        rows.append({"step": step, "epoch": round(step / s["per_epoch"], 4), **row})
        with log_path.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")

    while step < s["total"] and not best.stop:
        for batch in batches():
            model.train()
            loss = loss_of(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step, running = step + 1, running + [float(loss.detach())]
            if step % s["log_every"] == 0:
                log({"loss": sum(running) / len(running), "learning_rate": sched.get_last_lr()[lr_group]})
                running = []
            if step % s["eval_every"] == 0 or step == s["total"]:
                model.eval()
                metrics = evaluate()
                log(metrics)
                best.update(metrics)
            if step >= s["total"] or best.stop:
                break
    best.restore()
    return rows, step


def fit_head(model: torch.nn.Module, train: tuple[torch.Tensor, torch.Tensor],
             val: tuple[torch.Tensor, torch.Tensor], *, cfg: Config, scheme: LabelScheme, log_path: Path):
    """Train the head on features with AdamW, the configured schedule and early stopping; the best
    evaluation's weights are restored. Seeded: the same config gives the same head.

    Returns:
        A ``transformers.TrainerState`` (log history, steps, best metric) as the Trainer path keeps.
    """
    from transformers import TrainerState

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    s = schedule_of(cfg, len(train[1]))
    loss_fn, compute = head_loss(model, cfg, train[1], len(scheme)), make_compute_metrics(scheme)
    opt, sched = _optimizer(model, cfg, s["total"])
    best = BestEvaluation({n: p for n, p in model.named_parameters() if p.requires_grad}, s)
    state = TrainerState(max_steps=s["total"])
    rows, step = run_steps(batches=lambda: torch.randperm(len(train[1]), generator=gen).split(s["batch"]),
                           loss_of=lambda idx: loss_fn(train[0][idx], train[1][idx])[0],
                           evaluate=lambda: evaluate_head(loss_fn, *val, compute), model=model, opt=opt,
                           sched=sched, best=best, schedule=s, log_path=log_path)
    state.log_history.extend(rows)
    state.global_step, state.best_metric, state.epoch = step, best.value, step / s["per_epoch"]
    return state


class HeadRun:
    """What ``common.save_run`` reads from a Trainer: the model and its ``TrainerState``."""

    def __init__(self, model: torch.nn.Module, state: Any):
        self.model = model
        self.state = state


SOLVERS = {"adamw": fit_head, "lbfgs": fit_head_lbfgs, "ridge": fit_head_ridge}


def _solver(cfg: Config):
    """The head fit ``training.head_solver`` names: AdamW with early stopping (``fit_head``),
    full-batch L-BFGS or a ridge probe (``head_solvers``).

    Raises:
        BadConfig: an unknown solver, or ``head_refit`` with AdamW (its early stopping needs the
            validation split that a refit trains on).
    """
    name = str(cfg.training.get("head_solver") or "adamw")
    if name not in SOLVERS:
        raise BadConfig(f"unknown training.head_solver {name!r}; valid: {', '.join(SOLVERS)}")
    if cfg.training.get("head_refit") and name == "adamw":
        raise BadConfig("training.head_refit=true needs training.head_solver=lbfgs or ridge (AdamW stops early on "
                        "the validation split, which a refit trains on)")
    return SOLVERS[name]


def clip_datasets(model, fe, part, scheme, cfg: Config, *, copies: int, channel: int = 0,
                  pool=None) -> list[tuple[AudioDataset, str]]:
    """``part``'s clean clips, then ``copies`` augmented copies, then ``channel`` channel copies
    (``training.channel_copies``: babble from ``pool``, the training split), each with its cache variant."""
    family = family_of(model)
    featurize = lambda w: family.featurize(fe, w)  # noqa: E731
    kw = dict(max_seconds=cfg.data.max_seconds, input_name=family.input_name, seed=cfg.seed)
    sets = [(AudioDataset(part, scheme, featurize, **kw), "")]
    augment = build_augment(cfg.augment) if copies else None
    # what shapes a copy (not how many copies there are, so asking for more reuses the first ones)
    recipe = json.dumps({k: v for k, v in dataclasses.asdict(cfg.augment).items()
                         if k not in ("enabled", "feature_copies") and not k.startswith("channel_")}, sort_keys=True)
    for k in range(1, copies + 1):
        aug = AudioDataset(part, scheme, featurize, augment=augment, seed_by_path=True, **kw)
        aug.set_epoch(k)
        sets.append((aug, f"{recipe}|seed={cfg.seed}|copy {k}"))
    if channel:
        degrade, recipe = channel_augment(cfg.augment, part, part if pool is None else pool,
                                          max_seconds=cfg.data.max_seconds)
        for k in range(1, channel + 1):
            aug = AudioDataset(part, scheme, featurize, augment=degrade, seed_by_path=True, **kw)
            aug.set_epoch(k)
            sets.append((aug, f"{recipe}|seed={cfg.seed}|channel copy {k}"))
    return sets


def copy_counts(cfg: Config) -> tuple[int, int]:
    """``augment.feature_copies`` and ``augment.channel_copies``.

    Raises:
        BadConfig: copies with ``augment.enabled=false``, or invalid channel settings.
    """
    copies, channel = int(cfg.augment.feature_copies or 0), int(cfg.augment.channel_copies or 0)
    for name, n in (("feature_copies", copies), ("channel_copies", channel)):
        if n and not cfg.augment.enabled:
            raise BadConfig(f"augment.{name}={n} needs augment.enabled=true")
    if channel:
        check_channel(cfg.augment)
    return copies, channel


def _encode(model, fe, sets: list[tuple[AudioDataset, str]], *, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached features and labels of every dataset in ``sets``, concatenated."""
    xs = [cached_features(model, fe, ds, progress=progress, variant=v) for ds, v in sets]
    return torch.cat(xs), torch.cat([torch.tensor(ds.labels) for ds, _ in sets])


def _encode_shared(model: torch.nn.Module, fe: Any, sets: list[tuple[AudioDataset, str]], *, progress: bool) -> bool:
    """In a data-parallel launch, every process encodes its share of the uncached clips into the
    feature cache, then only rank 0 goes on (the head is small: it trains in one process). True
    for the process that trains (always, when run plainly)."""
    here = start_group()
    if here.world == 1:
        return True
    if here.main:
        logging.getLogger("emovox").info(
            "frozen-feature path on %d processes: each encodes its share of the clips into the feature cache "
            "(%s); the head then trains on rank 0 alone", here.world, cache_root())
    for ds, variant in sets:
        ds.trace_loads(here.rank)  # what each process encodes, when $EMOVOX_TRACE_CLIPS asks
        cached_features(model, fe, ds, progress=progress and here.main, variant=variant,
                        share=(here.rank, here.world))
    barrier()
    return here.main


def train_head_on_features(*, cfg: Config, manifest: str | Path, out: str | Path, progress: bool = True):
    """Train only the head on cached frozen-backbone features and save a normal run dir.

    Writes the same files as the Trainer path (model, feature extractor, emovox.json, config.yaml,
    train_log.jsonl, train_metrics.json, curves.png) except checkpoints and tensorboard logs.
    With ``augment.feature_copies`` K, the head also fits on K augmented copies of each training
    clip (encoded once each and cached), and with ``augment.channel_copies`` C on C channel-degraded
    copies (the module ``training.channel_copies``). With ``training.head_refit`` (L-BFGS), the head is fitted
    on train, validated (the reported validation metrics and the temperature come from that fit),
    then fitted again with the same settings on train + validation: the saved head has seen the
    validation speakers, so only the test split measures it.

    Returns:
        ``train.TrainResult``.

    Raises:
        BadConfig: attentive pooling (needs frames), a backbone that is not frozen, augmented
            copies with augmentation off, invalid channel conditions, or an unknown solver;
        BadManifest: missing splits or labels outside the scheme.
    """
    if not cfg.model.cacheable or not cfg.model.freeze_backbone:
        raise BadConfig(f"cached features need model.freeze_backbone=true and model.pooling=mean or stats (got "
                        f"freeze_backbone={cfg.model.freeze_backbone}, pooling={cfg.model.pooling!r}); "
                        "set model.cache_features=false to train through the full model")
    copies, channel = copy_counts(cfg)
    _solver(cfg)  # an unknown solver fails before any encoding
    refit = bool(cfg.training.get("head_refit"))
    started, out = time.time(), Path(out)
    df, train_df, val_df = split_frames(manifest)
    train_df = with_extra_train(train_df, cfg.data.extra_train)
    scheme = scheme_for(cfg, df, manifest)
    model, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    train_sets = clip_datasets(model, fe, train_df, scheme, cfg, copies=copies, channel=channel, pool=train_df)
    val_sets = clip_datasets(model, fe, val_df, scheme, cfg, copies=copies if refit else 0,
                             channel=channel if refit else 0, pool=train_df)
    if not _encode_shared(model, fe, train_sets + val_sets, progress=progress):
        return TrainResult(out, {}, 0, None, primary=False)
    train = _encode(model, fe, train_sets, progress=progress)
    val_all = _encode(model, fe, val_sets, progress=progress)  # clean clips first, then any copies
    return fit_and_save(model, fe, cfg=cfg, scheme=scheme, frames=(df, train_df, val_df), manifest=manifest, out=out,
                        train=train, val_all=val_all, n_val=len(val_sets[0][0]), started=started)


def fit_and_save(model: torch.nn.Module, fe: Any, *, cfg: Config, scheme: LabelScheme, frames: tuple, manifest,
                 out: Path, train: tuple[torch.Tensor, torch.Tensor], val_all: tuple[torch.Tensor, torch.Tensor],
                 n_val: int, started: float, history: list[dict] | None = None) -> TrainResult:
    """Fit the head on features (``training.head_solver``; standardised, then folded), validate it on
    the first ``n_val`` rows of ``val_all`` (the clean validation clips; any copies follow), fit the
    temperature there, refit on train + validation with ``training.head_refit``, and save the run
    dir. ``frames`` are the manifest's (all, train, validation) rows; ``history`` rows (an earlier
    stage's log: ``training.upper_tuning``) open the saved log history. The trainable parameters
    of ``model`` must be the head's alone."""
    df, train_df, val_df = frames
    solver, refit = _solver(cfg), bool(cfg.training.get("head_refit"))
    copies = sum(copy_counts(cfg))
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}  # the head
    val = (val_all[0][:n_val], val_all[1][:n_val])
    out.mkdir(parents=True, exist_ok=True)
    if history is None:
        RunDir(out).log.unlink(missing_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the head is a few small matrices: threads only add synchronisation
    try:
        groups = _groups(cfg, train_df, val_df, copies, refit)
        state = _fit_scaled(model, solver, train, val, None if groups is None else (groups[0], groups[1][:n_val]),
                            cfg=cfg, scheme=scheme, log_path=RunDir(out).log)
        state.log_history = [*(history or []), *state.log_history]
        loss_fn = head_loss(model, cfg, train[1], len(scheme))
        metrics = {**evaluate_head(loss_fn, *val, make_compute_metrics(scheme)), "epoch": state.epoch,
                   "eval_n": len(val[1])}
        with torch.no_grad():
            logits = loss_fn(*val)[1].numpy()
        if refit:
            model.load_state_dict(initial, strict=False)
            both = (torch.cat([train[0], val_all[0]]), torch.cat([train[1], val_all[1]]))
            refit_state = _fit_scaled(model, solver, both, None, None if groups is None else
                                      (groups[0] + groups[1], None), cfg=cfg, scheme=scheme, log_path=RunDir(out).log)
            state.log_history += refit_state.log_history
            metrics["refit_on_validation"] = True
    finally:
        torch.set_num_threads(threads)
    model.eval()
    metrics["temperature"] = round(float(fit_temperature(logits, val[1].numpy())), 4)
    if model.unscaled_head is not None:
        save_unscaled_head(model.unscaled_head, out)
    else:
        (out / UNSCALED_HEAD).unlink(missing_ok=True)
    save_run(HeadRun(model, state), fe, cfg, scheme, df, manifest, out, metrics, time.time() - started)
    return TrainResult(out, metrics, state.global_step, None)


def _groups(cfg: Config, train_df, val_df, copies: int, refit: bool) -> tuple[list, list] | None:
    """Per feature row of train and validation (copies included), the group ``training.standardise_by``
    names (a manifest column: corpus or speaker), or None.

    Raises:
        BadConfig: an unknown column.
    """
    by = cfg.training.get("standardise_by")
    if not by:
        return None
    if by not in ("corpus", "speaker"):
        raise BadConfig(f"training.standardise_by={by!r}: valid are corpus, speaker (or null: pooled)")
    return (list(train_df[by].astype(str)) * (copies + 1),
            list(val_df[by].astype(str)) * ((copies if refit else 0) + 1))


def clip_features(model: torch.nn.Module, fe: Any, part, scheme: LabelScheme, cfg: Config, *,
                  progress: bool) -> torch.Tensor:
    """The cached frozen-encoder features of ``part``'s clips (encoded once each, as training does)."""
    return _encode(model, fe, clip_datasets(model, fe, part, scheme, cfg, copies=0), progress=progress)[0]


def _fit_scaled(model, solver, train, val, groups=None, **kw):
    """Fit the head with ``solver`` on standardised features (``feature_scaling``), then fold the
    standardisation into the head so that it runs on raw features.

    With ``groups`` (train's and val's corpus or speaker per row, ``training.standardise_by``) each
    group is standardised by its own statistics for the fit; the saved head folds the pooled ones
    (``emovox adapt`` folds a target's own)."""
    scaler = scaler_for(model, train[0])
    if scaler is not None and groups is not None:
        ref = (train[0], groups[0])
        scale = lambda part, g: (standardise_by_group(model, part[0], g, ref), part[1])  # noqa: E731
        state = solver(model, scale(train, groups[0]), None if val is None else scale(val, groups[1]), **kw)
    else:
        scale1 = (lambda part: part) if scaler is None else (lambda part: (scaler(part[0]), part[1]))
        state = solver(model, scale1(train), None if val is None else scale1(val), **kw)
    model.unscaled_head = None
    if scaler is not None:
        model.unscaled_head = head_params(model)  # what `emovox adapt` refolds with a target's statistics
        scaler.fold_into(model)
    model.eval()
    return state
