"""The cached-feature head trains on standardised features; folding the standardisation into the
head (layer mix and projector, or a stats head's classifier) gives a model whose logits on raw
features equal the trained ones."""
import pytest
import torch

from emovox.config import ModelConfig
from emovox.labels import get_scheme
from emovox.models.heads import pooled_logits
from emovox.models.loading import load_model
from emovox.training.feature_scaling import FeatureScaler, StatsScaler, scaler_for

S6, S21 = get_scheme("crema-d-6"), get_scheme("crema-d-21")


def _features(n=12, layers=4, hidden=32, seed=0):
    """Cached-feature layout [n, 2, layers, hidden]: means (with outlier dimensions), then stds."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-1, 2.5, hidden)[torch.randperm(hidden, generator=g)]  # outlier dimensions
    means = torch.randn(n, layers, hidden, generator=g) * scale + 50 * torch.randn(layers, hidden, generator=g)
    stds = torch.rand(n, layers, hidden, generator=g) * scale + 0.1
    return torch.stack([means, stds], dim=1)


@pytest.mark.parametrize("scheme,cfg,kind", [
    (S6, ModelConfig(freeze_backbone=True, layer_weighting=True), FeatureScaler),
    (S6, ModelConfig(freeze_backbone=True), FeatureScaler),
    (S21, ModelConfig(freeze_backbone=True, layer_weighting=True, multitask=True), FeatureScaler),
    (S6, ModelConfig(freeze_backbone=True, multitask=False, layer_weighting=False, pooling="mean"), FeatureScaler),
    (S6, ModelConfig(freeze_backbone=True, pooling="stats"), StatsScaler),
    (S21, ModelConfig(freeze_backbone=True, pooling="stats", multitask=True), StatsScaler),
])
def test_folded_scaling_gives_the_trained_logits_on_raw_features(scheme, cfg, kind):
    model, _ = load_model("tiny", scheme, cfg)
    model.eval()
    x = _features()
    scaler = scaler_for(model, x)
    assert isinstance(scaler, kind)
    z = scaler(x)
    if kind is FeatureScaler:
        assert z[:, 0, :-1].mean(dim=0).abs().max() < 1e-4 and z[:, 0, -1].std(dim=0).sub(1).abs().max() < 1e-4
    else:
        assert z.flatten(1).mean(dim=0).abs().max() < 1e-4 and z.flatten(1).std(dim=0).sub(1).abs().max() < 1e-4
    with torch.no_grad():  # a "trained" head: random layer mix and weights
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.1)
        trained = pooled_logits(model, z).logits
    scaler.fold_into(model)
    with torch.no_grad():
        raw = pooled_logits(model, x).logits
    assert torch.allclose(raw, trained, atol=1e-3 * trained.abs().max().item() + 1e-4)


@pytest.mark.parametrize("scheme,multitask", [(S6, False), (S21, True)])
def test_skipped_states_weigh_nothing_and_the_fold_stays_exact(scheme, multitask):
    """model.stats_skip_states=1: the lowest hidden state's statistics come out of the scaler as
    zeros, and after the fold its raw values move no logit, whatever the head held there."""
    model, _ = load_model("tiny", scheme, ModelConfig(freeze_backbone=True, pooling="stats", multitask=multitask,
                                                     stats_skip_states=1))
    model.eval()
    x = _features()
    scaler = scaler_for(model, x)
    z = scaler(x)
    assert z[:, :, 0].abs().max() == 0 and z[:, :, 1:].flatten(1).std(dim=0).sub(1).abs().max() < 1e-4
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.1)  # weights on the skipped state too, as AdamW's init leaves
        trained = pooled_logits(model, z).logits
    scaler.fold_into(model)
    moved = x.clone()
    moved[:, :, 0] = torch.randn_like(moved[:, :, 0]) * 1e3
    with torch.no_grad():
        raw, raw_moved = pooled_logits(model, x).logits, pooled_logits(model, moved).logits
    assert torch.allclose(raw, trained, atol=1e-3 * trained.abs().max().item() + 1e-4)
    assert torch.allclose(raw_moved, raw, atol=1e-5)


@pytest.mark.parametrize("settings,message", [
    (dict(pooling="mean", stats_skip_states=1), "pooling=stats"),
    (dict(pooling="stats", stats_skip_states=-1), "whole number"),
    (dict(pooling="stats", stats_skip_states=99), "leave out 0 to"),
    (dict(pooling="stats", stats_skip_states=1, tune_upper_layers=1), "set one of them to 0"),
    (dict(pooling="stats", stats_skip_states=1, cache_features=False), "cache_features=true"),
])
def test_bad_stats_skip_states_is_refused_naming_the_key(settings, message):
    from emovox.errors import BadConfig

    with pytest.raises(BadConfig, match=message):
        load_model("tiny", S6, ModelConfig(freeze_backbone=True, **settings))
