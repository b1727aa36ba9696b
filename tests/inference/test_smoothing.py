"""Smoothing before int8 export (tiny random Whisper): exact in fp32, and the int8 export of a
smoothed Whisper run passes the parity check with its projector kept fp32."""
from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch

from emovox.config import ModelConfig
from emovox.inference.export import encode, export_onnx, synthetic_waves
from emovox.inference.smoothing import TokenScaled, input_maxima, smooth_whisper, whisper_folds
from emovox.labels import get_scheme
from emovox.models.backbones import backbone_for
from emovox.models.loading import load_model, save_trained
from emovox.testing import save_tiny_whisper

S6 = get_scheme("crema-d-6")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A layer-weighted tiny Whisper classifier with outlier channels in every LayerNorm output."""
    src = save_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny")
    model, fe = load_model(str(src), S6, ModelConfig(name=str(src), layer_weighting=True), seed=3)
    family = backbone_for(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in family.encoder_of(model).layers:
            for norm in (layer.self_attn_layer_norm, layer.final_layer_norm):
                norm.weight[:3].mul_(30.0)
                norm.bias.add_(torch.randn(norm.bias.shape, generator=gen))
        model.classifier.weight.mul_(400.0)
    return model.eval(), fe, family


def _logits(model, fe, family, waves):
    out = []
    with torch.inference_mode():
        for wave in waves:
            values, mask = encode(fe, wave, family)
            out.append(model(input_features=torch.from_numpy(values), attention_mask=torch.from_numpy(mask)).logits)
    return torch.cat(out).numpy()


def test_smoothing_leaves_fp32_logits_unchanged(tiny):
    model, fe, family = tiny
    smoothed = copy.deepcopy(model)
    encoder = family.encoder_of(smoothed)
    calibration = synthetic_waves((1.0, 2.0), seed=1)
    before = input_maxima(whisper_folds(encoder), lambda: _logits(smoothed, fe, family, calibration))
    smooth_whisper(encoder, lambda: _logits(smoothed, fe, family, calibration))
    assert all(isinstance(layer.fc2, TokenScaled) for layer in encoder.layers)
    after = input_maxima(whisper_folds(encoder), lambda: _logits(smoothed, fe, family, calibration))
    spread = lambda m: float(m.max() / m.median())  # noqa: E731
    assert spread(after[0]) < spread(before[0]) / 3  # the outlier channels were moved into the weights
    waves = synthetic_waves((0.8, 1.5, 3.0), seed=2)  # not the calibration waves
    ref, got = _logits(model, fe, family, waves), _logits(smoothed, fe, family, waves)
    assert np.abs(ref).max() > 1.0  # logits that move, so 1e-4 means something
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_int8_whisper_export_is_smoothed_and_passes_parity(tiny, tmp_path, monkeypatch):
    model, fe, family = tiny
    run = tmp_path / "run"
    family.prepare_to_save(model, fe, window_seconds=5.0)
    save_trained(model, run)
    fe.save_pretrained(run)
    (run / "emovox.json").write_text(json.dumps({"scheme": S6.to_dict(), "max_seconds": 5.0}))
    res = export_onnx(run_dir=run, out=tmp_path / "onnx", int8=True)
    assert res.smoothed and res.int8 and res.n_checked == 4
    nodes = onnx.load(str(res.onnx_path)).graph.node
    assert sum(n.op_type == "MatMulInteger" and "layers." in n.name for n in nodes) == 2 * 6  # q k v out fc1 fc2
    assert any(n.op_type == "MatMul" and "projector" in n.name for n in nodes)  # kept fp32
    monkeypatch.setattr(type(family), "int8_smoothing", False)
    plain = export_onnx(run_dir=run, out=tmp_path / "plain", int8=True)
    assert not plain.smoothed
    assert res.max_prob_diff < 0.02 and res.max_logit_diff < plain.max_logit_diff  # closer to torch than without
