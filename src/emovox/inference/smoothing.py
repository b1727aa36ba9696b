"""Exact rescalings of a Whisper encoder that make dynamic int8 lose less (applied before export).

Dynamic int8 quantises each MatMul's input with one scale per tensor. Whisper's MatMul inputs
have outliers of two kinds (measured on a whisper-base probe, RAVDESS speech):

* a few *frames* tens of times larger than the rest (up to 180 against a median frame maximum
  of 3-45, in fc1/fc2 of the later layers): ``token_scale`` divides every frame by its own
  maximum before the MatMul and multiplies the result back (a ReduceMax, a Div and a Mul per
  MatMul), so the quantiser sees frames of one range: per-frame quantisation, in effect;
* a few *channels* larger than the rest (LayerNorm outputs feeding q/k/v and fc1, attention
  outputs feeding out_proj): ``smooth_channels`` divides channel j by
  ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (SmoothQuant) and multiplies the matching
  weight column by ``s_j``, the division folded into the op before: the LayerNorm's weight and
  bias, or v_proj's output rows (attention mixes frames, not channels). GELU is not linear, so
  fc2's input is scaled per frame only.

Both leave the fp32 function unchanged (to float rounding).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.nn import functional as F

DEFAULT_ALPHA = 0.5
MIN_SCALE = 1e-5


@dataclass(frozen=True)
class Fold:
    """One channel-smoothing site: ``source`` produces the channels that ``targets`` read.

    Attributes:
        source: A LayerNorm (its weight and bias are divided) or a Linear (its output rows are).
        targets: Linear layers reading ``source``'s output (their input columns are multiplied).
    """

    source: Any
    targets: tuple[Any, ...]


def whisper_folds(encoder: Any) -> list[Fold]:
    """The exact channel-smoothing sites of every layer of a Whisper encoder."""
    folds = []
    for layer in encoder.layers:
        attn = layer.self_attn
        folds += [Fold(layer.self_attn_layer_norm, (attn.q_proj, attn.k_proj, attn.v_proj)),
                  Fold(attn.v_proj, (attn.out_proj,)),
                  Fold(layer.final_layer_norm, (layer.fc1,))]
    return folds


def input_maxima(folds: list[Fold], run: Callable[[], Any]) -> list[torch.Tensor]:
    """Per-channel max |x| of each fold's input over everything ``run()`` pushes through the model.

    Raises:
        ValueError: ``run()`` reached none of the folds.
    """
    maxima: list[Any] = [None] * len(folds)

    def hook(i: int) -> Callable:
        def record(_module: Any, args: tuple, _out: Any) -> None:
            amax = args[0].detach().abs().flatten(0, -2).amax(dim=0)
            maxima[i] = amax if maxima[i] is None else torch.maximum(maxima[i], amax)
        return record

    handles = [f.targets[0].register_forward_hook(hook(i)) for i, f in enumerate(folds)]
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in handles:
            h.remove()
    if any(m is None for m in maxima):
        raise ValueError("smoothing calibration ran no input through the encoder layers")
    return maxima


def smooth_channels(folds: list[Fold], maxima: list[torch.Tensor], alpha: float = DEFAULT_ALPHA) -> None:
    """Fold ``s_j = max|X_j|^alpha / max|W_j|^(1-alpha)`` into each fold's source and targets, in place."""
    with torch.no_grad():
        for fold, x_max in zip(folds, maxima):
            w_max = torch.stack([t.weight.abs().amax(dim=0) for t in fold.targets]).amax(dim=0)
            s = (x_max.clamp(min=MIN_SCALE) ** alpha / w_max.clamp(min=MIN_SCALE) ** (1 - alpha)).clamp(min=MIN_SCALE)
            src = fold.source
            if isinstance(src, torch.nn.LayerNorm):
                src.weight.div_(s)
                src.bias.div_(s)
            else:
                src.weight.div_(s[:, None])
                if src.bias is not None:
                    src.bias.div_(s)
            for t in fold.targets:
                t.weight.mul_(s[None, :])


class TokenScaled(torch.nn.Module):
    """A Linear whose input frames are each divided by their max |x| and the output multiplied
    back: ``(x / m) W^T * m + b == x W^T + b``, with a MatMul input of one range for the quantiser."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.abs().amax(dim=-1, keepdim=True).clamp(min=MIN_SCALE)
        y = F.linear(x / m, self.weight) * m
        return y if self.bias is None else y + self.bias


def token_scale(encoder: Any) -> int:
    """Make every Linear of the encoder's layers ``TokenScaled``, in place. Returns how many."""
    n = 0
    for layer in encoder.layers:
        for parent in (layer.self_attn, layer):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(parent, name, TokenScaled(child))
                    n += 1
    return n


def smooth_whisper(encoder: Any, run: Callable[[], Any], *, alpha: float = DEFAULT_ALPHA) -> None:
    """Channel smoothing calibrated on ``run()`` (which pushes waves through the model holding
    ``encoder``), then per-frame scaling of every layer's Linear; in place, fp32 output unchanged."""
    folds = whisper_folds(encoder)
    smooth_channels(folds, input_maxima(folds, run), alpha)
    token_scale(encoder)
