"""The family is resolved once, where a model is loaded, and carried: the levers after loading read
it and never dispatch on ``model_type`` again (DESIGN: the backbone layer)."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import emovox.models.backbones as backbones
from emovox.config import ModelConfig
from emovox.data.dataset import AudioDataset
from emovox.labels import get_scheme
from emovox.models.backbones import family_of
from emovox.models.loading import load_model, load_trained, save_trained
from emovox.models.tuning import backbone_of, encoder_layers, freeze_layers
from emovox.testing import save_tiny_whisper, write_tone
from emovox.training.feature_cache import cached_features

S6 = get_scheme("crema-d-6")


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny")


def _no_dispatch(*args, **kwargs):
    raise AssertionError("backbone_for called after loading")


def _forbid_dispatch(monkeypatch) -> None:
    """Every binding of ``backbone_for`` in emovox's modules raises from here on."""
    for name, module in list(sys.modules.items()):
        if name.startswith("emovox") and getattr(module, "backbone_for", None) is backbones.backbone_for:
            monkeypatch.setattr(module, "backbone_for", _no_dispatch)


@pytest.mark.parametrize("pooling", ["stats", "mean"])
def test_levers_after_loading_read_the_carried_family(whisper_dir, tmp_path, monkeypatch, pooling):
    cfg = ModelConfig(name=str(whisper_dir), pooling=pooling, freeze_backbone=True)
    model, fe = load_model(str(whisper_dir), S6, cfg, seed=0)
    family = family_of(model)
    assert family.family == "whisper" and family_of(backbone_of(model)) is family
    _forbid_dispatch(monkeypatch)  # any resolution from here on fails
    assert len(encoder_layers(model)) == 2
    freeze_layers(model, 1)
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    paths = [str(write_tone(tmp_path / f"{i}.wav", 0.5, freq=200 + 40 * i)) for i in range(2)]
    df = pd.DataFrame({"path": paths, "label": ["ANG", "SAD"], "duration": [0.5, 0.5]})
    ds = AudioDataset(df, S6, lambda w: family.featurize(fe, w), max_seconds=2.0, input_name=family.input_name)
    x = cached_features(model, fe, ds, progress=False)
    assert x.shape[0] == 2 and np.isfinite(x.numpy()).all()


def test_a_reloaded_run_carries_its_family(whisper_dir, tmp_path, monkeypatch):
    model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), pooling="stats"), seed=0)
    save_trained(model, tmp_path / "run")
    fe.save_pretrained(str(tmp_path / "run"))
    loaded = load_trained(tmp_path / "run")
    _forbid_dispatch(monkeypatch)
    assert family_of(loaded).family == "whisper" and family_of(backbone_of(loaded)) is family_of(loaded)
