"""Frames below a layer, cached: the lower half of fine-tuning that fits a CPU.

Fine-tuning the top ``n`` layers of a frozen-below encoder needs the lower layers' output for
every clip at every step, but never their gradients: each clip (and each augmented copy) is run
once through the embedding and layers ``1 .. k`` (``k = L - n``), and kept in the feature cache
(``training.feature_cache``, kind ``frames-k{k}``) as

- ``frames``: the hidden state entering layer ``k + 1``, [T, H] at the clip's own length, float16;
- ``stats``: the frame means and standard deviations of hidden states ``0 .. k`` [2, k + 1, H],
  float32 (what a stats-pooling head reads from the layers that are not tuned).

``upper_stats`` runs the (tuned) upper layers on padded frames and returns the utterance
statistics [B, 2, L + 2, H] that the head reads: exactly what the whole model computes from the
audio (``models.heads``), up to the float16 rounding of the cached frames. The encoder family must
run its layers in parts (``embed`` and ``run_layers``: Whisper today).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..data.dataset import AudioDataset
from ..errors import BadConfig
from ..models.backbones import family_of
from ..models.heads import layer_stats
from ..models.tuning import backbone_of
from .feature_cache import cached_items


def split_family(model: torch.nn.Module, tuned: int) -> tuple[Any, int]:
    """The model's encoder family and ``k``, the layers below the ``tuned`` top ones.

    Raises:
        BadConfig: a family that cannot run its layers in parts, or ``tuned`` outside 1 .. L.
    """
    base = backbone_of(model)
    family = family_of(base)
    if not hasattr(family, "run_layers"):
        raise BadConfig(f"model.tune_upper_layers: the {family.family} encoder cannot run its layers in parts yet "
                        "(Whisper can); set model.tune_upper_layers=0 or model.freeze_backbone=false")
    n_layers = family.n_layers(base.config)
    if not 1 <= tuned <= n_layers:
        raise BadConfig(f"model.tune_upper_layers={tuned}: valid are 1 .. {n_layers} (the encoder's layers)")
    return family, n_layers - tuned


def lower_encoder(k: int, dtype: torch.dtype = torch.float16):
    """An ``encode`` for ``feature_cache.cached_items``: each clip's frames entering layer ``k + 1``
    (``dtype``) and the statistics of hidden states ``0 .. k`` (float32)."""

    def encode(base: torch.nn.Module, values: Sequence[np.ndarray], *, use_mask: bool) -> list[dict[str, np.ndarray]]:
        family = family_of(base)
        x, mask = family.pad(list(values))
        with torch.inference_mode():
            h, frames = family.embed(base, torch.from_numpy(x), torch.from_numpy(mask) if use_mask else None)
            states = [h, *family.run_layers(base, h, frames if use_mask else None, 0, k)]
            stats = layer_stats(torch.stack(states, dim=1), frames)
        n = frames.sum(dim=1).tolist()
        return [{"frames": states[-1][i, : n[i]].to(dtype).numpy(), "stats": stats[i].float().numpy()}
                for i in range(len(values))]

    return encode


def cached_lower(model: torch.nn.Module, fe: Any, dataset: AudioDataset, k: int, *, variant: str = "",
                 progress: bool = False, use_cache: bool = True) -> list[dict[str, np.ndarray]]:
    """Every clip's lower-layer frames and statistics (``lower_encoder``), from the cache where present."""
    return cached_items(model, fe, dataset, encode=lower_encoder(k), kind=f"frames-k{k}", variant=variant,
                        progress=progress, use_cache=use_cache)


def pad_frames(items: Sequence[dict[str, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames padded to the longest (float32 [B, T, H]), their bool mask [B, T] and the lower
    statistics [B, 2, k + 1, H]."""
    longest = max(len(it["frames"]) for it in items)
    hidden = items[0]["frames"].shape[1]
    frames = torch.zeros(len(items), longest, hidden)
    mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for i, it in enumerate(items):
        n = len(it["frames"])
        frames[i, :n] = torch.from_numpy(it["frames"].astype(np.float32))
        mask[i, :n] = True
    return frames, mask, torch.from_numpy(np.stack([it["stats"] for it in items]))


def upper_stats(model: torch.nn.Module, frames: torch.Tensor, mask: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """Utterance statistics [B, 2, L + 2, H] from the frames entering layer ``k + 1`` (``k`` is read
    off ``lower``'s k + 1 hidden states): layers ``k + 1 .. L`` run on ``frames``, attending and
    pooled over ``mask``; the last after the encoder's final norm, repeated as the encoder output,
    as ``models.heads`` pools the whole model's states."""
    base = backbone_of(model)
    k = lower.shape[2] - 1
    states = family_of(base).run_layers(base, frames, mask, k)
    last = base.layer_norm(states[-1])
    upper = layer_stats(torch.stack([*states[:-1], last, last], dim=1), mask)
    return torch.cat([lower.to(upper.dtype), upper], dim=2)


def tuned_parameters(model: torch.nn.Module, k: int) -> list[torch.nn.Parameter]:
    """The parameters of layers ``k + 1 .. L`` and the final norm, made trainable (the rest of the
    encoder stays frozen)."""
    base = backbone_of(model)
    modules = [*list(base.layers)[k:], base.layer_norm]
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params
