"""Standardisation of cached features that a head absorbs after training.

Whisper's hidden states have a few dimensions hundreds of times larger than the rest, on which a
head trains badly; the head therefore trains on standardised features, and the standardisation
(affine) is folded into its first affine layer afterwards, so the saved model runs on raw features
(and raw audio) exactly as trained. ``scaler_for`` picks the form the head can absorb.
"""
from __future__ import annotations

import torch

from ..models.heads import EmovoxForAudioClassification


def _layer_logits(model: torch.nn.Module) -> torch.Tensor | None:
    """The layer-mix logits (a softmax over them weights the hidden states), if the head has them."""
    if isinstance(model, EmovoxForAudioClassification):
        return None if model.layer_weights is None else model.layer_weights.weights
    if getattr(model.config, "use_weighted_layer_sum", False):
        return model.layer_weights
    return None


class FeatureScaler:
    """Standardisation of the frame means of cached features [N, 2, L+2, H] (``x[:, 0]``; the
    standard deviations pass through: a mean-pooling head does not read them).

    Hidden state l (of L+1) becomes (x_l - mu_l) / (s_l * sd): mu_l per layer and dimension, s_l one
    number per layer (its RMS after centring), sd per dimension, shared by the layers. A softmax layer
    mix w of those is (Z / sd) * mix_v(x) - c / sd with v_l = (w_l / s_l) / Z, Z = sum_l w_l / s_l,
    c = sum_l w_l mu_l / s_l: again a softmax mix of the raw states, scaled per dimension and shifted,
    which the projector absorbs. The encoder output (used without a layer mix) is standardised per
    dimension, which the projector absorbs as well.
    """

    def __init__(self, x: torch.Tensor):
        x = x[:, 0].double()
        states = x[:, :-1]
        self.mu = states.mean(dim=0)  # [L+1, H]
        self.s = (states - self.mu).pow(2).mean(dim=(0, 2)).sqrt().clamp(min=1e-8)  # [L+1]
        self.sd = ((states - self.mu) / self.s[:, None]).std(dim=(0, 1)).clamp(min=1e-6)  # [H]
        self.mu_out = x[:, -1].mean(dim=0)
        self.sd_out = x[:, -1].std(dim=0).clamp(min=1e-6)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        means = x[:, 0].double()
        states = (means[:, :-1] - self.mu) / (self.s[:, None] * self.sd)
        out = (means[:, -1:] - self.mu_out) / self.sd_out
        return torch.stack([torch.cat([states, out], dim=1).float(), x[:, 1]], dim=1)

    @staticmethod
    def applies(model: torch.nn.Module) -> bool:
        """Whether the head is a (layer mix, then) linear projector that the scaling can fold into."""
        projector = getattr(model, "projector", None)  # None for a stats head
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




class StatsScaler:
    """Per-dimension standardisation of the whole statistics vector (a stats-pooling head reads
    every layer's means and standard deviations, flattened), folded into every linear layer of
    the classifier that reads that vector. The head's ``skip_states`` first hidden states come out
    as zeros and get zero weight in the fold, whatever the solver left there."""

    def __init__(self, x: torch.Tensor, skip: int = 0):
        flat = x.flatten(1).double()
        self.mu = flat.mean(dim=0)
        self.sd = flat.std(dim=0).clamp(min=1e-6)
        keep = torch.ones(x.shape[1:], dtype=torch.float64)  # [2, L+2, H]
        keep[:, :skip] = 0.0
        self.keep = keep.flatten()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.flatten(1).double() - self.mu) / self.sd * self.keep).float().view_as(x)

    @staticmethod
    def applies(model: torch.nn.Module) -> bool:
        """Whether the head reads the flattened statistics directly (stats pooling)."""
        return isinstance(model, EmovoxForAudioClassification) and model.stats

    def fold_into(self, model: torch.nn.Module) -> None:
        """Rewrite the classifier's input layers so that raw statistics give the scaled ones' logits."""
        with torch.no_grad():
            for layer in model.classifier.modules():
                if isinstance(layer, torch.nn.Linear) and layer.in_features == self.mu.numel():
                    w = layer.weight.double() * self.keep[None, :] / self.sd[None, :]
                    layer.bias.copy_((layer.bias.double() - w @ self.mu).to(layer.bias.dtype))
                    layer.weight.copy_(w.to(layer.weight.dtype))


def scaler_for(model: torch.nn.Module, x: torch.Tensor) -> "FeatureScaler | StatsScaler | None":
    """The standardisation ``model``'s head can absorb, fitted on features ``x``; None if none."""
    if StatsScaler.applies(model):
        return StatsScaler(x, skip=int(model.head_config.skip_states))
    return FeatureScaler(x) if FeatureScaler.applies(model) else None


UNSCALED_HEAD = "head_unscaled.safetensors"  # in a run dir: the head as fitted, before the scaling fold


def head_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable (head) parameters, copied."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_unscaled_head(params: dict[str, torch.Tensor], run_dir) -> None:
    """Keep the head as fitted on standardised features, so ``emovox adapt`` can fold another
    corpus's standardisation into it later."""
    from pathlib import Path

    from safetensors.torch import save_file

    save_file({n: t.contiguous() for n, t in params.items()}, str(Path(run_dir) / UNSCALED_HEAD))


def load_unscaled_head(run_dir) -> dict[str, torch.Tensor] | None:
    """The head before its standardisation fold (None for runs that were not fitted that way)."""
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(run_dir) / UNSCALED_HEAD
    return load_file(str(path)) if path.is_file() else None


def refold(model: torch.nn.Module, unscaled: dict[str, torch.Tensor], x: torch.Tensor) -> None:
    """Put the fitted head back and fold the standardisation of features ``x`` (another corpus's
    own statistics) into it: the head then sees that corpus standardised as it saw its training data.

    Raises:
        ValueError: the head has no standardisation to refold, or ``unscaled`` is not its head.
    """
    params = dict(model.named_parameters())
    missing = [n for n in unscaled if n not in params]
    if missing:
        raise ValueError(f"the saved head does not fit the model (e.g. {missing[0]})")
    with torch.no_grad():
        for n, t in unscaled.items():
            params[n].copy_(t.to(params[n].dtype))
    scaler = scaler_for(model, x)
    if scaler is None:
        raise ValueError("this head has no feature standardisation to re-estimate")
    scaler.fold_into(model)


def standardise_by_group(model: torch.nn.Module, x: torch.Tensor, groups, reference=None) -> torch.Tensor:
    """``x`` standardised within each group (corpus or speaker) by that group's own statistics:
    those of its rows in ``reference`` = (features, groups) when the group is there (a training
    corpus), else of its rows in ``x`` itself. A group of one row keeps the pooled statistics."""
    import numpy as np

    groups = np.asarray(groups, dtype=object)
    pooled = scaler_for(model, x if reference is None else reference[0])
    out = pooled(x)
    ref_x, ref_g = (x, groups) if reference is None else (reference[0], np.asarray(reference[1], dtype=object))
    for g in dict.fromkeys(groups):
        rows = torch.from_numpy(np.flatnonzero(groups == g))
        ref_rows = np.flatnonzero(ref_g == g)
        basis = ref_x[torch.from_numpy(ref_rows)] if len(ref_rows) > 1 else x[rows]
        if len(basis) > 1:
            out[rows] = scaler_for(model, basis)(x[rows])
    return out
