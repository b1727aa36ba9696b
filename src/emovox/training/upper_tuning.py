"""Fine-tuning that fits a CPU: the top encoder layers and the head, on cached lower-layer frames.

With ``model.tune_upper_layers=N`` (and ``freeze_backbone``, ``cache_features``, stats pooling),
every training clip, each of its augmented copies (``augment.feature_copies``) and every
validation clip is run once through the lower ``k = L - N`` layers and cached
(``training.layer_cache``). Then:

1. the frozen model's statistics give a standardisation and a ridge probe (the frozen recipe's
   head), whose scores, scaled by a temperature fitted on train, start the head;
2. layers ``k + 1 .. L`` (and the final norm) and that head train with AdamW on the cross-entropy
   (``training.learning_rate`` for the layers, ``training.head_learning_rate`` for the head, the
   configured schedule and class weights), on cached frames masked SpecAugment-style
   (``training.frame_time_mask``: frames dropped in spans; ``training.frame_channel_mask``:
   channels zeroed in spans), validated every ``eval_steps`` and early-stopped on
   ``metric_for_best_model`` (the best evaluation's weights are kept);
3. with the tuned layers the statistics are computed again (no masks) and the head is fitted as
   the frozen path fits it (``features.fit_and_save``: ``head_solver``, validation metrics,
   temperature, ``head_refit`` on train + validation), and the run dir is saved.

The run dir is an ordinary one (the whole encoder with its tuned upper layers): predict, serve
and export run the audio through every layer and compute what training computed from the cache.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..config import Config
from ..errors import BadConfig
from ..evaluation.metrics import fit_temperature
from ..models.loading import load_model
from ..rundir import RunDir
from .common import TrainResult, class_weights, make_compute_metrics, scheme_for, split_frames, with_extra_train
from .features import BestEvaluation, clip_datasets, copy_counts, fit_and_save, run_steps, schedule_of
from .head_solvers import evaluate_head, fit_head_ridge
from .layer_cache import cached_lower, pad_frames, split_family, tuned_parameters, upper_stats

SPAN_FRAMES, SPAN_CHANNELS = 10, 32


def train_upper_layers(*, cfg: Config, manifest: str | Path, out: str | Path, progress: bool = True) -> TrainResult:
    """Fine-tune the top ``model.tune_upper_layers`` layers and the head on cached lower-layer
    frames, then fit the final head and save a run dir (see the module docstring).

    Returns:
        ``train.TrainResult``.

    Raises:
        BadConfig: settings this path cannot train (not frozen below, not stats pooling, a family
            that cannot run its layers in parts, copies without augmentation);
        BadManifest: missing splits or labels outside the scheme.
    """
    if not (cfg.model.freeze_backbone and cfg.model.cache_features and cfg.model.pooling == "stats"
            and not cfg.model.multitask):
        raise BadConfig("model.tune_upper_layers needs model.freeze_backbone=true, model.cache_features=true, "
                        f"model.pooling=stats and model.multitask=false (got pooling={cfg.model.pooling!r})")
    copies, channel = copy_counts(cfg)
    refit, started, out = bool(cfg.training.get("head_refit")), time.time(), Path(out)
    df, train_df, val_df = split_frames(manifest)
    train_df = with_extra_train(train_df, cfg.data.extra_train)
    scheme = scheme_for(cfg, df, manifest)
    model, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    _, k = split_family(model, int(cfg.model.tune_upper_layers))
    train_sets = clip_datasets(model, fe, train_df, scheme, cfg, copies=copies, channel=channel, pool=train_df)
    val_sets = clip_datasets(model, fe, val_df, scheme, cfg, copies=copies if refit else 0,
                             channel=channel if refit else 0, pool=train_df)
    lower = lambda sets: ([it for ds, v in sets for it in cached_lower(model, fe, ds, k, variant=v,  # noqa: E731
                                                                       progress=progress)],
                          torch.cat([torch.tensor(ds.labels) for ds, _ in sets]))
    train_items, val_items, n_val = lower(train_sets), lower(val_sets), len(val_sets[0][0])
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).log.unlink(missing_ok=True)
    tuned_at = time.time()
    history = tune(model, train_items, (val_items[0][:n_val], val_items[1][:n_val]), cfg=cfg, scheme=scheme,
                   log_path=RunDir(out).log, k=k)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.classifier.parameters():
        p.requires_grad_(True)
    train = (all_stats(model, train_items[0]), train_items[1])
    val_all = (all_stats(model, val_items[0]), val_items[1])
    result = fit_and_save(model, fe, cfg=cfg, scheme=scheme, frames=(df, train_df, val_df), manifest=manifest, out=out,
                          train=train, val_all=val_all, n_val=n_val, started=started, history=history)
    result.metrics["upper_tuning_seconds"] = round(time.time() - tuned_at, 1)
    result.steps = int(history[-1]["step"])  # the tuning steps (the head fit that follows is one step)
    return result


def all_stats(model: torch.nn.Module, items: list[dict[str, np.ndarray]], batch: int = 32) -> torch.Tensor:
    """Statistics [N, 2, L + 2, H] of every cached clip through the model's upper layers (eval mode, no masks)."""
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i]["frames"]))
    out: list[torch.Tensor | None] = [None] * len(items)
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            for i, s in zip(idx, upper_stats(model, *pad_frames([items[i] for i in idx]))):
                out[i] = s
    return torch.stack(out)


def masked(frames: torch.Tensor, mask: torch.Tensor, *, time_p: float, channel_p: float,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """SpecAugment on cached frames: about ``time_p`` of each clip's frames dropped (from attention
    and pooling) in spans of ``SPAN_FRAMES``, at least one frame kept; about ``channel_p`` of the
    hidden channels zeroed in spans of ``SPAN_CHANNELS`` (per clip)."""
    frames, mask = frames.clone(), mask.clone()
    hidden = frames.shape[-1]
    for i in range(len(frames)):
        n = int(mask[i].sum())
        for _ in range(round(time_p * n / SPAN_FRAMES) if n > SPAN_FRAMES else 0):
            start = int(torch.randint(0, n - SPAN_FRAMES + 1, (1,), generator=gen))
            mask[i, start:start + SPAN_FRAMES] = False
        if not mask[i].any():
            mask[i, int(torch.randint(0, n, (1,), generator=gen))] = True
        for _ in range(round(channel_p * hidden / SPAN_CHANNELS)):
            start = int(torch.randint(0, hidden - SPAN_CHANNELS + 1, (1,), generator=gen))
            frames[i, :, start:start + SPAN_CHANNELS] = 0.0
    return frames, mask


def _batches(items: list[dict], batch: int, gen: torch.Generator) -> list[list[int]]:
    """One epoch of batches: shuffled, sorted by length within pools of 8 batches (little padding),
    the batches shuffled again."""
    order = torch.randperm(len(items), generator=gen).tolist()
    out: list[list[int]] = []
    for start in range(0, len(order), 8 * batch):
        pool = sorted(order[start:start + 8 * batch], key=lambda i: len(items[i]["frames"]))
        out += [pool[j:j + batch] for j in range(0, len(pool), batch)]
    return [out[j] for j in torch.randperm(len(out), generator=gen).tolist()]


class _Standardised(torch.nn.Module):
    """The head during tuning: per-dimension standardisation (fixed, from the frozen model's training
    statistics), then a linear layer started from the ridge probe's scores divided by a temperature."""

    def __init__(self, mu: torch.Tensor, sd: torch.Tensor, linear: torch.nn.Linear, temperature: float):
        super().__init__()
        self.register_buffer("mu", mu)
        self.register_buffer("sd", sd)
        self.linear = copy.deepcopy(linear)
        with torch.no_grad():
            self.linear.weight.div_(temperature)
            self.linear.bias.div_(temperature)

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return self.linear((stats.flatten(1) - self.mu) / self.sd)


def _start_head(model, train_items, cfg: Config, scheme, log_path: Path) -> _Standardised:
    """The ridge probe on the frozen model's standardised statistics, scaled to probabilities on train."""
    x = all_stats(model, train_items[0]).flatten(1)
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mu) / sd
    fit_head_ridge(model, (z, train_items[1]), None, cfg=cfg, scheme=scheme, log_path=log_path)
    with torch.no_grad():
        scores = model.classifier.linear(z).numpy()
    return _Standardised(mu, sd, model.classifier.linear, float(fit_temperature(scores, train_items[1].numpy())))


def tune(model: torch.nn.Module, train_items: tuple[list[dict], torch.Tensor], val_items: tuple[list[dict], torch.Tensor],
         *, cfg: Config, scheme, log_path: Path, k: int) -> list[dict[str, Any]]:
    """Train layers ``k + 1 .. L`` and a standardised head on masked cached frames, with early
    stopping on validation; the best evaluation's layer weights stay in ``model``.

    Returns:
        The log rows (also appended to ``log_path``).
    """
    t = cfg.training
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    head = _start_head(model, train_items, cfg, scheme, log_path)
    params = tuned_parameters(model, k)
    lr = float(t.get("learning_rate") or 3e-5)
    head_lr = float(t.get("head_learning_rate") or lr)
    opt = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": list(head.parameters()), "lr": head_lr}],
                            weight_decay=float(t.get("weight_decay") or 0.0))
    s = schedule_of(cfg, len(train_items[1]))
    from transformers import get_scheduler

    warm = float(t.get("warmup_steps") or 0)
    warm = int(warm) if warm >= 1 else math.ceil((warm or float(t.get("warmup_ratio") or 0.0)) * s["total"])
    sched = get_scheduler(str(t.get("lr_scheduler_type") or "linear"), opt, num_warmup_steps=warm,
                          num_training_steps=s["total"])
    weights = class_weights(train_items[1].tolist(), len(scheme)) if t.get("class_weighted_loss") else None
    compute = make_compute_metrics(scheme)
    tracked = {**{f"p{i}": p for i, p in enumerate(params)}, **{f"h.{n}": p for n, p in head.named_parameters()}}
    best = BestEvaluation(tracked, s)
    time_p, channel_p = float(t.get("frame_time_mask") or 0.0), float(t.get("frame_channel_mask") or 0.0)

    def loss_of(idx):
        frames, mask, low = pad_frames([train_items[0][i] for i in idx])
        frames, mask = masked(frames, mask, time_p=time_p, channel_p=channel_p, gen=gen)
        return F.cross_entropy(head(upper_stats(model, frames, mask, low)), train_items[1][idx], weight=weights)

    rows, step = run_steps(batches=lambda: _batches(train_items[0], s["batch"], gen), loss_of=loss_of,
                           evaluate=lambda: _evaluate(model, head, val_items, weights, compute),
                           model=torch.nn.ModuleList([model, head]),
                           opt=opt, sched=sched, best=best, schedule=s, log_path=log_path, lr_group=0)
    rows.append({"step": step, "epoch": round(step / s["per_epoch"], 4),
                 "upper_tuning_best": best.value, "tuned_layers_from": k + 1})
    with log_path.open("a") as f:
        f.write(json.dumps(rows[-1]) + "\n")
    return rows


def _evaluate(model, head, val_items, weights, compute) -> dict[str, float]:
    """Validation metrics of the tuned layers and head on the clean validation clips."""
    head.eval()
    stats = all_stats(model, val_items[0])
    return evaluate_head(lambda x, y: (F.cross_entropy(head(x), y, weight=weights), head(x)), stats, val_items[1],
                         compute)
