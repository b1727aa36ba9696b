"""The frozen-feature fast path: with ``model.freeze_backbone`` (and ``model.cache_features``, on by
default), each clip is encoded once by the frozen backbone into per-layer utterance means
[layers + 2, hidden], cached on disk, and only the head trains on those vectors — minutes instead of
hours on a CPU.

Because the layer mix, the projector and mean pooling are affine, a head trained on per-layer means
computes exactly what the full model computes on the clip (``models.heads.pooled_logits``), so the result
is saved as an ordinary run dir: backbone + trained head, loaded by ``models.loading.load_trained``.
The head trains on standardised features (``FeatureScaler``: each layer centred per dimension and
scaled by one number per layer, then every dimension scaled to unit variance, from the training
clips): Whisper's hidden states have a few dimensions hundreds of times larger than the rest, on
which a raw-feature head trains badly. The standardisation is affine in a form the layer mix and the
projector can absorb, so after training it is folded into their weights and the saved model runs
on raw features (and raw audio) exactly as trained.
Augmentation does not apply on this path (the features are of the clean clips), and there are no
checkpoints to resume from: a rerun reads the cache and retrains the head.

The cache itself is ``training.feature_cache``.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ..config import Config
from ..data.dataset import AudioDataset
from ..errors import BadConfig
from ..evaluation.metrics import fit_temperature
from ..labels import LabelScheme
from ..models.backbones import backbone_for
from ..models.heads import EmovoxForAudioClassification, pooled_logits
from ..models.loading import load_model
from ..models.tuning import backbone_of, param_groups
from ..rundir import RunDir
from .common import TrainResult, class_weights, make_compute_metrics, save_run, scheme_for, split_frames, with_extra_train
from .distributed import barrier, start_group
from .feature_cache import cache_root, cached_features


def _loss_fn(model: torch.nn.Module, cfg: Config, labels: torch.Tensor, n_classes: int):
    """The training loss on features: the model's own (multi-task) loss, or cross-entropy with the
    configured class weights and label smoothing, as the Trainer path uses."""
    weights = class_weights(labels.tolist(), n_classes) if cfg.training.get("class_weighted_loss") else None
    smoothing = float(cfg.training.get("label_smoothing_factor") or 0.0)
    multitask = isinstance(model, EmovoxForAudioClassification) and model.head_config.multitask

    def loss(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = pooled_logits(model, x, y)
        if multitask:
            return out.loss, out.logits
        return F.cross_entropy(out.logits, y, weight=weights, label_smoothing=smoothing), out.logits

    return loss


def _evaluate(loss_fn, x: torch.Tensor, y: torch.Tensor, compute_metrics) -> dict[str, float]:
    from transformers import EvalPrediction

    with torch.no_grad():
        loss, logits = loss_fn(x, y)
    metrics = compute_metrics(EvalPrediction(predictions=logits.numpy(), label_ids=y.numpy()))
    return {"eval_loss": float(loss), **{f"eval_{k}": v for k, v in metrics.items()}}


def _schedule(cfg: Config, n_train: int) -> dict[str, Any]:
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


class _Best:
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
    s = _schedule(cfg, len(train[1]))
    loss_fn, compute = _loss_fn(model, cfg, train[1], len(scheme)), make_compute_metrics(scheme)
    opt, sched = _optimizer(model, cfg, s["total"])
    best = _Best({n: p for n, p in model.named_parameters() if p.requires_grad}, s)
    state, running, step = TrainerState(max_steps=s["total"]), [], 0

    def log(row: dict[str, float]) -> None:
        entry = {"step": step, "epoch": round(step / s["per_epoch"], 4), **row}
        state.log_history.append(entry)
        with log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    while step < s["total"] and not best.stop:
        for idx in torch.randperm(len(train[1]), generator=gen).split(s["batch"]):
            model.train()
            loss, _ = loss_fn(train[0][idx], train[1][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step, running = step + 1, running + [float(loss.detach())]
            if step % s["log_every"] == 0:
                log({"loss": sum(running) / len(running), "learning_rate": sched.get_last_lr()[-1]})
                running = []
            if step % s["eval_every"] == 0 or step == s["total"]:
                model.eval()
                metrics = _evaluate(loss_fn, *val, compute)
                log(metrics)
                best.update(metrics)
            if step >= s["total"] or best.stop:
                break
    best.restore()
    state.global_step, state.best_metric, state.epoch = step, best.value, step / s["per_epoch"]
    return state


def _layer_logits(model: torch.nn.Module) -> torch.Tensor | None:
    """The layer-mix logits (a softmax over them weights the hidden states), if the head has them."""
    if isinstance(model, EmovoxForAudioClassification):
        return None if model.layer_weights is None else model.layer_weights.weights
    if getattr(model.config, "use_weighted_layer_sum", False):
        return model.layer_weights
    return None


class FeatureScaler:
    """Standardisation of cached features [N, L+2, H] that the head can absorb after training.

    Hidden state l (of L+1) becomes (x_l - mu_l) / (s_l * sd): mu_l per layer and dimension, s_l one
    number per layer (its RMS after centring), sd per dimension, shared by the layers. A softmax layer
    mix w of those is (Z / sd) * mix_v(x) - c / sd with v_l = (w_l / s_l) / Z, Z = sum_l w_l / s_l,
    c = sum_l w_l mu_l / s_l: again a softmax mix of the raw states, scaled per dimension and shifted,
    which the projector absorbs. The encoder output (used without a layer mix) is standardised per
    dimension, which the projector absorbs as well.
    """

    def __init__(self, x: torch.Tensor):
        x = x.double()
        states = x[:, :-1]
        self.mu = states.mean(dim=0)  # [L+1, H]
        self.s = (states - self.mu).pow(2).mean(dim=(0, 2)).sqrt().clamp(min=1e-8)  # [L+1]
        self.sd = ((states - self.mu) / self.s[:, None]).std(dim=(0, 1)).clamp(min=1e-6)  # [H]
        self.mu_out = x[:, -1].mean(dim=0)
        self.sd_out = x[:, -1].std(dim=0).clamp(min=1e-6)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        states = (x[:, :-1] - self.mu) / (self.s[:, None] * self.sd)
        out = (x[:, -1:] - self.mu_out) / self.sd_out
        return torch.cat([states, out], dim=1).float()

    @staticmethod
    def applies(model: torch.nn.Module) -> bool:
        """Whether the head is a (layer mix, then) linear projector that the scaling can fold into."""
        projector = getattr(model, "projector", None)
        return isinstance(projector, torch.nn.Linear) and (
            isinstance(model, EmovoxForAudioClassification) or hasattr(model, "classifier"))

    def fold_into(self, model: torch.nn.Module) -> None:
        """Rewrite the layer mix and the projector so that raw features give the scaled ones' logits."""
        logits = _layer_logits(model)
        proj = model.projector
        with torch.no_grad():
            w_proj, b_proj = proj.weight.double(), proj.bias.double()
            if logits is not None:
                w = torch.softmax(logits.double(), dim=0)
                ratio = w / self.s
                z = ratio.sum()
                c = (ratio[:, None] * self.mu).sum(dim=0)
                logits.copy_(torch.log(ratio / z).to(logits.dtype))
                scale, shift = z / self.sd, c / self.sd
            else:
                scale, shift = 1.0 / self.sd_out, self.mu_out / self.sd_out
            proj.bias.copy_((b_proj - w_proj @ shift).to(proj.bias.dtype))
            proj.weight.copy_((w_proj * scale[None, :]).to(proj.weight.dtype))


class HeadRun:
    """What ``common.save_run`` reads from a Trainer: the model and its ``TrainerState``."""

    def __init__(self, model: torch.nn.Module, state: Any):
        self.model = model
        self.state = state


def _encode_shared(model: torch.nn.Module, fe: Any, sets: list[AudioDataset], *, progress: bool) -> bool:
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
    for ds in sets:
        ds.trace_loads(here.rank)  # what each process encodes, when $EMOVOX_TRACE_CLIPS asks
        cached_features(model, fe, ds, progress=progress and here.main, share=(here.rank, here.world))
    barrier()
    return here.main


def train_head_on_features(*, cfg: Config, manifest: str | Path, out: str | Path, progress: bool = True):
    """Train only the head on cached frozen-backbone features and save a normal run dir.

    Writes the same files as the Trainer path (model, feature extractor, emovox.json, config.yaml,
    train_log.jsonl, train_metrics.json, curves.png) except checkpoints and tensorboard logs.

    Returns:
        ``train.TrainResult``.

    Raises:
        BadConfig: attentive pooling (needs frames) or a backbone that is not frozen;
        BadManifest: missing splits or labels outside the scheme.
    """
    if cfg.model.pooling != "mean" or not cfg.model.freeze_backbone:
        raise BadConfig(f"cached features need model.freeze_backbone=true and model.pooling=mean (got "
                        f"freeze_backbone={cfg.model.freeze_backbone}, pooling={cfg.model.pooling!r}); "
                        "set model.cache_features=false to train through the full model")
    started, out = time.time(), Path(out)
    df, train_df, val_df = split_frames(manifest)
    train_df = with_extra_train(train_df, cfg.data.extra_train)
    scheme = scheme_for(cfg, df)
    model, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    family = backbone_for(backbone_of(model))
    sets = [AudioDataset(part, scheme, lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                         input_name=family.input_name, seed=cfg.seed) for part in (train_df, val_df)]
    if not _encode_shared(model, fe, sets, progress=progress):
        return TrainResult(out, {}, 0, None, primary=False)
    parts = [(cached_features(model, fe, ds, progress=progress), torch.tensor(ds.labels)) for ds in sets]
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).log.unlink(missing_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the head is a few small matrices: threads only add synchronisation
    scaler = FeatureScaler(parts[0][0]) if FeatureScaler.applies(model) else None
    scaled = parts if scaler is None else [(scaler(x), y) for x, y in parts]
    try:
        state = fit_head(model, scaled[0], scaled[1], cfg=cfg, scheme=scheme, log_path=RunDir(out).log)
    finally:
        torch.set_num_threads(threads)
    if scaler is not None:
        scaler.fold_into(model)  # from here on the head runs on raw features
    model.eval()
    loss_fn = _loss_fn(model, cfg, parts[0][1], len(scheme))
    metrics = {**_evaluate(loss_fn, *parts[1], make_compute_metrics(scheme)), "epoch": state.epoch,
               "eval_n": len(parts[1][1])}
    with torch.no_grad():
        logits = loss_fn(*parts[1])[1].numpy()
    metrics["temperature"] = round(float(fit_temperature(logits, parts[1][1].numpy())), 4)
    save_run(HeadRun(model, state), fe, cfg, scheme, df, manifest, out, metrics, time.time() - started)
    return TrainResult(out, metrics, state.global_step, None)
