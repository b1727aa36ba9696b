"""Closed-form and full-batch fits of a head on cached features (``training.head_solver``), and
the loss and evaluation every head fit shares:

- ``lbfgs``: the head's own loss (cross-entropy with class weights and label smoothing, or the
  multi-task loss) plus an L2 penalty, minimised to convergence by full-batch L-BFGS;
- ``ridge``: a linear least-squares probe (scikit-learn's ``Ridge``: one-vs-rest targets +1 / -1,
  an L2 penalty, class-balanced sample weights with ``class_weighted_loss``), solved exactly, for a
  flat head on stats pooling. Its outputs are scores, not log-probabilities: the temperature fitted
  on the validation split (``emovox.json``) turns them into calibrated probabilities.

AdamW with early stopping stays with the training loop in ``training.features``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..config import Config
from ..errors import BadConfig
from ..labels import LabelScheme
from ..models.heads import EmovoxForAudioClassification, FlatHead, pooled_logits
from .common import class_weights, make_compute_metrics


def head_loss(model: torch.nn.Module, cfg: Config, labels: torch.Tensor, n_classes: int):
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


def evaluate_head(loss_fn, x: torch.Tensor, y: torch.Tensor, compute_metrics) -> dict[str, float]:
    from transformers import EvalPrediction

    with torch.no_grad():
        loss, logits = loss_fn(x, y)
    metrics = compute_metrics(EvalPrediction(predictions=logits.numpy(), label_ids=y.numpy()))
    return {"eval_loss": float(loss), **{f"eval_{k}": v for k, v in metrics.items()}}


def fit_head_lbfgs(model: torch.nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor] | None, *, cfg: Config, scheme: LabelScheme,
                   log_path: Path):
    """Fit the head to convergence with full-batch L-BFGS on the mean training loss plus
    ``training.head_l2 / 2`` times the squared norm of its weight matrices (biases and layer-mix
    logits are not penalised): a regularised probe, as ``sklearn``'s logistic regression fits one,
    but on emovox's own head and loss (class weights, label smoothing, multi-task). Deterministic.

    Returns:
        A ``transformers.TrainerState`` (one training-loss row and, with ``val``, one evaluation).
    """
    t = cfg.training
    l2, iters = float(t.get("head_l2") or 0.0), int(t.get("head_max_iter") or 300)
    loss_fn = head_loss(model, cfg, train[1], len(scheme))
    params = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in params if p.dim() > 1]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)
    model.eval()  # no dropout in a head on features; eval mode keeps the fit deterministic

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(*train)[0] + 0.5 * l2 * sum(w.pow(2).sum() for w in matrices)
        loss.backward()
        return loss

    final = float(opt.step(closure).detach())
    done = int(opt.state[params[0]].get("n_iter", iters)) if params else 0
    return solved_state(model, cfg, scheme, train, val, log_path, step=done, row={"loss": final, "l2": l2})


def fit_head_ridge(model: torch.nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor] | None, *, cfg: Config, scheme: LabelScheme,
                   log_path: Path):
    """Solve the head as a ridge probe: minimise the mean (class-weighted) squared error against
    one-vs-rest targets (+1 for the clip's label, -1 elsewhere) plus ``training.head_l2`` times
    the squared norm of the weights (scikit-learn's ``Ridge`` with ``alpha = head_l2 * N``, so the
    same setting suits any number of clips). Exact and deterministic.

    Raises:
        BadConfig: the head is not one linear layer over stats pooling (multi-task, mean or
            attentive pooling).
    """
    from sklearn.linear_model import Ridge

    linear = _ridge_layer(model)
    l2 = float(cfg.training.get("head_l2") or 0.0)
    x, y = train[0].flatten(1).double().numpy(), train[1].numpy()
    targets = -np.ones((len(y), len(scheme)))
    targets[np.arange(len(y)), y] = 1.0
    weights = None
    if cfg.training.get("class_weighted_loss"):
        weights = class_weights(y.tolist(), len(scheme)).double().numpy()[y]
    fit = Ridge(alpha=max(l2, 1e-8) * len(y), fit_intercept=True).fit(x, targets, sample_weight=weights)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(fit.coef_).to(linear.weight.dtype))
        linear.bias.copy_(torch.from_numpy(np.asarray(fit.intercept_)).to(linear.bias.dtype))
    model.eval()
    residual = targets - fit.predict(x)
    mse = float(np.average(np.square(residual).sum(1), weights=weights))
    return solved_state(model, cfg, scheme, train, val, log_path, step=1, row={"loss": mse, "l2": l2})


def _ridge_layer(model: torch.nn.Module) -> torch.nn.Linear:
    head = getattr(model, "classifier", None)
    if not (isinstance(model, EmovoxForAudioClassification) and model.stats and isinstance(head, FlatHead)):
        raise BadConfig("training.head_solver=ridge fits one linear layer over stats pooling: set "
                        "model.pooling=stats and model.multitask=false (or use head_solver=lbfgs)")
    return head.linear


def solved_state(model, cfg: Config, scheme: LabelScheme, train, val, log_path: Path, *, step: int,
                 row: dict[str, float]) -> Any:
    """The ``transformers.TrainerState`` of a one-shot fit: its training row and, with ``val``, one
    evaluation, both appended to ``log_path``."""
    from transformers import TrainerState

    state = TrainerState(max_steps=step)
    rows = [{"step": step, "epoch": 1.0, **row, "n_train": int(len(train[1]))}]
    if val is not None:
        loss_fn = head_loss(model, cfg, train[1], len(scheme))
        rows.append({"step": step, "epoch": 1.0, **evaluate_head(loss_fn, *val, make_compute_metrics(scheme))})
    with log_path.open("a") as f:
        for r in rows:
            state.log_history.append(r)
            f.write(json.dumps(r) + "\n")
    metric = str(cfg.training.get("metric_for_best_model") or "eval_loss")
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    state.global_step, state.epoch = step, 1.0
    state.best_metric = rows[-1].get(metric) if val is not None else None
    return state
