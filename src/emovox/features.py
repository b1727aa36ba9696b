"""The frozen-feature fast path: with ``model.freeze_backbone`` (and ``model.cache_features``, on by
default), each clip is encoded once by the frozen backbone into per-layer utterance means
[layers + 1, hidden], cached on disk, and only the head trains on those vectors — minutes instead of
hours on a CPU.

Because the layer mix, the projector and mean pooling are affine, a head trained on per-layer means
computes exactly what the full model computes on the clip (``heads.pooled_logits``), so the result
is saved as an ordinary run dir: backbone + trained head, loaded by ``models.load_trained``.
Augmentation does not apply on this path (the features are of the clean clips), and there are no
checkpoints to resume from: a rerun reads the cache and retrains the head.

Cache: ``$EMOVOX_CACHE/features`` (default ``~/.cache/emovox/features``), one folder per model
(a hash of the backbone's weights, config and feature-extractor settings) holding one ``.npy`` per
clip (a hash of the resolved path, file size, modification time and ``max_seconds``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .config import Config
from .data import AudioDataset
from .errors import BadConfig
from .heads import EmovoxForAudioClassification, pooled_logits
from .labels import LabelScheme
from .models import DROPOUT_KEYS, backbone_of, load_model, param_groups, uses_attention_mask

FEATURE_VERSION = 1
# Config entries that do not change what a frozen encoder computes in eval mode.
_NOT_IN_KEY = {"id2label", "label2id", "num_labels", "architectures", "_name_or_path", "transformers_version",
               "use_weighted_layer_sum", "classifier_proj_size", *DROPOUT_KEYS}


def cache_root() -> Path:
    """Where features are cached: ``$EMOVOX_CACHE/features``, default ``~/.cache/emovox/features``."""
    return Path(os.environ.get("EMOVOX_CACHE") or Path.home() / ".cache" / "emovox").expanduser() / "features"


def model_key(model: torch.nn.Module, feature_extractor: Any) -> str:
    """A hash of what determines the features: backbone weights and config, normalisation settings."""
    base = backbone_of(model)
    config = {k: v for k, v in base.config.to_dict().items() if k not in _NOT_IN_KEY}
    h = hashlib.blake2b(digest_size=10)
    h.update(json.dumps({"version": FEATURE_VERSION, "config": config, "fe": feature_extractor.to_dict()},
                        sort_keys=True, default=str).encode())
    for name, tensor in sorted(base.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def clip_key(path: str | Path, max_seconds: float) -> str:
    """A hash of the clip's resolved path, size, modification time and the length it is cut to."""
    p = Path(path).resolve()
    st = p.stat()
    text = f"{p}|{st.st_size}|{st.st_mtime_ns}|{float(max_seconds):.6f}"
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def encode_batch(base: torch.nn.Module, values: Sequence[np.ndarray], *, use_mask: bool) -> np.ndarray:
    """Per-layer means over each clip's real frames: float32 [B, layers + 1, hidden].

    Without a mask (group-norm models such as wav2vec2-base) pass one clip at a time: padding
    would change their feature encoder's normalisation.
    """
    n = max(len(v) for v in values)
    x = torch.zeros(len(values), n)
    mask = torch.zeros(len(values), n, dtype=torch.long)
    for k, v in enumerate(values):
        x[k, : len(v)] = torch.as_tensor(v)
        mask[k, : len(v)] = 1
    with torch.inference_mode():
        out = base(x, attention_mask=mask if use_mask else None, output_hidden_states=True, return_dict=True)
        hidden = torch.stack(out.hidden_states, dim=1)  # [B, L+1, T, H]
        frames = (base._get_feature_vector_attention_mask(hidden.shape[2], mask) if use_mask
                  else torch.ones(len(values), hidden.shape[2], dtype=torch.bool))
        m = frames[:, None, :, None].to(hidden.dtype)
        means = (hidden * m).sum(dim=2) / m.sum(dim=2).clamp(min=1.0)
    return means.float().numpy()


def _batches(order: list[int], lengths: Sequence[int], *, use_mask: bool, max_samples: int) -> list[list[int]]:
    """Length-sorted batches of at most ``max_samples`` padded samples (singletons without a mask)."""
    if not use_mask:
        return [[i] for i in order]
    out: list[list[int]] = []
    for i in sorted(order, key=lambda j: lengths[j]):
        if out and lengths[i] * (len(out[-1]) + 1) <= max_samples:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def cached_features(model: torch.nn.Module, feature_extractor: Any, dataset: AudioDataset, *,
                    use_cache: bool = True, progress: bool = False, batch_seconds: float = 32.0) -> torch.Tensor:
    """Features [N, layers + 1, hidden] of every clip of ``dataset``, from the cache where present.

    Newly encoded clips are written to the cache atomically (other processes may share it).
    """
    from tqdm import tqdm

    from .audio import SAMPLE_RATE

    base = backbone_of(model).eval()
    use_mask = uses_attention_mask(feature_extractor)
    folder = cache_root() / model_key(model, feature_extractor)
    keys = [clip_key(p, dataset.max_seconds) for p in dataset.paths]
    feats: list[np.ndarray | None] = [_read(folder / f"{k}.npy") if use_cache else None for k in keys]
    todo = [i for i, f in enumerate(feats) if f is None]
    bar = tqdm(total=len(todo), desc="encoding", unit="clip", disable=not progress or not todo, mininterval=0.5)
    for batch in _batches(todo, dataset.lengths, use_mask=use_mask, max_samples=int(batch_seconds * SAMPLE_RATE)):
        encoded = encode_batch(base, [dataset[i]["input_values"] for i in batch], use_mask=use_mask)
        for i, f in zip(batch, encoded):
            feats[i] = f
            if use_cache:
                _write(folder / f"{keys[i]}.npy", f)
        bar.update(len(batch))
    bar.close()
    return torch.from_numpy(np.stack(feats))


def _read(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError):
        return None


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _loss_fn(model: torch.nn.Module, cfg: Config, labels: torch.Tensor, n_classes: int):
    """The training loss on features: the model's own (multi-task) loss, or cross-entropy with the
    configured class weights and label smoothing, as the Trainer path uses."""
    from .train import class_weights

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
    warmup = int(t.get("warmup_steps") or 0) or math.ceil(float(t.get("warmup_ratio") or 0.0) * total)
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

    from .train import make_compute_metrics

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


class HeadRun:
    """What ``train._save_run`` reads from a Trainer: the model and its ``TrainerState``."""

    def __init__(self, model: torch.nn.Module, state: Any):
        self.model = model
        self.state = state


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
    from .rundir import RunDir
    from .metrics import fit_temperature
    from .train import TrainResult, _save_run, make_compute_metrics, scheme_for, split_frames, with_extra_train

    if cfg.model.pooling != "mean" or not cfg.model.freeze_backbone:
        raise BadConfig(f"cached features need model.freeze_backbone=true and model.pooling=mean (got "
                        f"freeze_backbone={cfg.model.freeze_backbone}, pooling={cfg.model.pooling!r}); "
                        "set model.cache_features=false to train through the full model")
    started, out = time.time(), Path(out)
    df, train_df, val_df = split_frames(manifest)
    train_df = with_extra_train(train_df, cfg.data.extra_train)
    scheme = scheme_for(cfg, df)
    model, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed)
    parts = []
    for part in (train_df, val_df):
        ds = AudioDataset(part, scheme, fe, max_seconds=cfg.data.max_seconds, cache=False, seed=cfg.seed)
        parts.append((cached_features(model, fe, ds, progress=progress), torch.tensor(ds.labels)))
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).log.unlink(missing_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the head is a few small matrices: threads only add synchronisation
    try:
        state = fit_head(model, parts[0], parts[1], cfg=cfg, scheme=scheme, log_path=RunDir(out).log)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    loss_fn = _loss_fn(model, cfg, parts[0][1], len(scheme))
    metrics = {**_evaluate(loss_fn, *parts[1], make_compute_metrics(scheme)), "epoch": state.epoch}
    with torch.no_grad():
        logits = loss_fn(*parts[1])[1].numpy()
    metrics["temperature"] = round(float(fit_temperature(logits, parts[1][1].numpy())), 4)
    _save_run(HeadRun(model, state), fe, cfg, scheme, df, manifest, out, metrics, time.time() - started)
    return TrainResult(out, metrics, state.global_step, None)
