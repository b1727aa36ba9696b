"""The cached-feature head trains on standardised features; folding the standardisation into the
layer mix and projector gives a model whose logits on raw features equal the trained ones."""
import pytest
import torch

from emovox.config import ModelConfig
from emovox.labels import get_scheme
from emovox.models.heads import pooled_logits
from emovox.models.loading import load_model
from emovox.training.features import FeatureScaler

S6, S21 = get_scheme("crema-d-6"), get_scheme("crema-d-21")


def _features(n=12, layers=4, hidden=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, layers, hidden, generator=g)
    scale = torch.logspace(-1, 2.5, hidden)[torch.randperm(hidden, generator=g)]  # outlier dimensions
    return x * scale + 50 * torch.randn(layers, hidden, generator=g)


@pytest.mark.parametrize("scheme,cfg", [
    (S6, ModelConfig(freeze_backbone=True, layer_weighting=True)),
    (S6, ModelConfig(freeze_backbone=True)),
    (S21, ModelConfig(freeze_backbone=True, layer_weighting=True, multitask=True)),
    (S6, ModelConfig(freeze_backbone=True, multitask=False, layer_weighting=False, pooling="mean")),
])
def test_folded_scaling_gives_the_trained_logits_on_raw_features(scheme, cfg):
    model, _ = load_model("tiny", scheme, cfg)
    model.eval()
    x = _features()
    assert FeatureScaler.applies(model)
    scaler = FeatureScaler(x)
    z = scaler(x)
    assert z[:, :-1].mean(dim=0).abs().max() < 1e-4 and z[:, -1].std(dim=0).sub(1).abs().max() < 1e-4
    with torch.no_grad():  # a "trained" head: random layer mix and weights
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.1)
        trained = pooled_logits(model, z).logits
    scaler.fold_into(model)
    with torch.no_grad():
        raw = pooled_logits(model, x).logits
    assert torch.allclose(raw, trained, atol=1e-3 * trained.abs().max().item() + 1e-4)
