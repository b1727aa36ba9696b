"""The Whisper backbone (tiny random Whisper): each clip at its own length, padding changes
nothing, every lever works through the backbone layer, and a trained run dir loads in
``transformers.pipeline`` with the same top-1 as emovox."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emovox.config import ModelConfig
from emovox.labels import get_scheme
from emovox.models.backbones import backbone_for
from emovox.models.loading import load_model, load_trained, save_trained
from emovox.testing import save_tiny_whisper, tone

S6 = get_scheme("crema-d-6")


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny")


def _inputs(family, fe, waves):
    x, mask = family.pad([family.featurize(fe, w) for w in waves])
    return torch.from_numpy(x), torch.from_numpy(mask)


@pytest.mark.parametrize("kw", [dict(), dict(layer_weighting=True), dict(pooling="attentive"),
                                dict(multitask=True, layer_weighting=True)])
def test_padding_does_not_change_a_clip(whisper_dir, kw):
    scheme = get_scheme("crema-d-21") if kw.get("multitask") else S6
    model, fe = load_model(str(whisper_dir), scheme, ModelConfig(name=str(whisper_dir), **kw), seed=1)
    model.eval()
    family = backbone_for(model)
    assert family.family == "whisper" and family.input_name == "input_features"
    waves = [tone(0.8, seed=1), tone(2.3, freq=180.0, seed=2)]
    x, mask = _inputs(family, fe, waves)
    assert x.shape == (2, 80, len(waves[1]) // 160)  # own length: 100 mel frames per second, not 3000
    with torch.no_grad():
        batch = model(input_features=x, attention_mask=mask).logits
        for k, w in enumerate(waves):
            xi, mi = _inputs(family, fe, [w])
            alone = model(input_features=xi, attention_mask=mi).logits[0]
            assert (batch[k] - alone).abs().max() < 1e-5


def test_levers_freeze_what_they_say(whisper_dir):
    model, _ = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), freeze_layers=1))
    enc = model.encoder
    assert not any(p.requires_grad for p in enc.conv1.parameters())  # front end frozen by default
    assert not any(p.requires_grad for p in enc.layers[0].parameters())
    assert all(p.requires_grad for p in enc.layers[1].parameters())
    lora, _ = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), lora_r=2))
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any(n.startswith("classifier") for n in names)
    assert not any("decoder" in n for n, _ in lora.named_parameters())  # the encoder only


def test_saved_run_loads_in_the_pipeline_with_the_same_scores(whisper_dir, tmp_path):
    from transformers import AutoFeatureExtractor, pipeline

    from emovox.inference.predict import Predictor

    model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir)), seed=2)
    backbone_for(model).prepare_to_save(model, fe, window_seconds=10.0)
    save_trained(model, tmp_path)
    fe.save_pretrained(tmp_path)
    (tmp_path / "emovox.json").write_text(json.dumps({"scheme": S6.to_dict(), "max_seconds": 5.0}))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == ["WhisperForAudioClassification"] and saved["max_source_positions"] == 500
    assert AutoFeatureExtractor.from_pretrained(tmp_path).chunk_length == 10
    pipe = pipeline("audio-classification", model=str(tmp_path), device="cpu")
    predictor = Predictor.from_run_dir(tmp_path)
    # A clip of exactly the saved window: the pipeline pads nothing, so the scores are emovox's.
    # (Shorter clips: the pipeline pads to 10 s and averages padded frames too; on a random model,
    # whose logits are near-ties, that moves top-1; tests/test_realdata_whisper.py checks real clips.)
    wave = tone(10.0, freq=200.0, seed=3)
    ours = dict(zip(S6.labels, predictor.probs([wave])[0]))
    for r in pipe(wave, top_k=6):
        assert ours[r["label"]] == pytest.approx(r["score"], abs=1e-5)
    waves = [wave]
    again = load_trained(tmp_path)
    assert type(again).__name__ == "WhisperForAudioClassification"
    x, mask = _inputs(backbone_for(again), fe, waves[:1])
    with torch.no_grad():
        assert again(input_features=x, attention_mask=mask).logits.shape == (1, 6)


def test_frozen_feature_path_equals_the_full_model(whisper_dir):
    from emovox.models.heads import pooled_logits
    from emovox.training.feature_cache import encode_batch

    model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), freeze_backbone=True,
                                                            layer_weighting=True), seed=3)
    model.eval()
    with torch.no_grad():
        model.layer_weights.normal_()
        family = backbone_for(model)
        waves = [tone(0.9, seed=4), tone(1.6, seed=5)]
        feats = [family.featurize(fe, w) for w in waves]
        means = torch.from_numpy(encode_batch(model.encoder, feats, use_mask=True))
        x, mask = _inputs(family, fe, waves)
        full = model(input_features=x, attention_mask=mask).logits
        assert (pooled_logits(model, means).logits - full).abs().max() < 1e-5


@pytest.mark.parametrize("extra", [[], ["model.freeze_backbone=true", "model.layer_weighting=true"]])
def test_train_and_predict_with_a_whisper_backbone(whisper_dir, tiny_manifest, tmp_path, extra, monkeypatch):
    from conftest import TINY_TRAIN

    from emovox.data.manifest import load_manifest
    from emovox.inference.predict import Predictor
    from emovox.rundir import RunDir, read_meta
    from emovox.training.train import train

    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    res = train(manifest=tiny_manifest, out=tmp_path / "run", model=str(whisper_dir),
                overrides=[*TINY_TRAIN, "training.learning_rate=3e-3", *extra], progress=False)
    run = RunDir(res.run_dir)
    assert read_meta(run)["scheme"]["name"] == "crema-d-6" and (run.root / "model.safetensors").is_file()
    assert json.loads((run.root / "config.json").read_text())["max_source_positions"] == 50  # 1 s clips
    predictor = Predictor.from_run_dir(run.root)
    paths = list(load_manifest(tiny_manifest)["path"][:4])
    rows = list(predictor.predict_files(paths))
    assert [r["path"] for r in rows] == paths and all(r["label"] in S6.labels for r in rows)


def test_onnx_export_keeps_the_time_axis_dynamic(whisper_dir, tmp_path):
    from emovox.inference.export import export_onnx
    from emovox.inference.predict import Predictor

    model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir)), seed=4)
    with torch.no_grad():
        model.classifier.weight.mul_(40.0)
    backbone_for(model).prepare_to_save(model, fe, window_seconds=10.0)
    save_trained(model, tmp_path / "run")
    fe.save_pretrained(tmp_path / "run")
    (tmp_path / "run" / "emovox.json").write_text(json.dumps({"scheme": S6.to_dict(), "max_seconds": 5.0}))
    res = export_onnx(run_dir=tmp_path / "run", out=tmp_path / "onnx")  # parity at 1, 1.7, 2.6 and 4 s
    assert res.max_prob_diff < 1e-4 and res.top1_agreement == 1.0
    waves = [tone(0.7, seed=6), tone(6.3, seed=7)]
    torch_p = Predictor.from_run_dir(tmp_path / "run").probs(waves)
    onnx_p = Predictor.from_run_dir(tmp_path / "onnx", backend="onnx").probs(waves)
    np.testing.assert_allclose(onnx_p, torch_p, atol=1e-4)


def test_onnx_whisper_graph_takes_any_length_and_padded_batches(whisper_dir, tmp_path):
    """The exported graph's time axis and batch are dynamic and its mask is live: a padded batch of
    two lengths gives each clip's logits alone, fp32 and int8."""
    from emovox.data.dataset import pad_batch
    from emovox.inference.export import OnnxClassifier, export_onnx

    model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir)), seed=5)
    backbone_for(model).prepare_to_save(model, fe, window_seconds=8.0)
    save_trained(model, tmp_path / "run")
    fe.save_pretrained(tmp_path / "run")
    (tmp_path / "run" / "emovox.json").write_text(json.dumps({"scheme": S6.to_dict(), "max_seconds": 8.0}))
    family = backbone_for(model)
    feats = [family.featurize(fe, tone(s, seed=k)) for k, s in enumerate((0.9, 3.3, 7.5))]
    for int8 in (False, True):
        out = tmp_path / f"onnx{int(int8)}"
        export_onnx(run_dir=tmp_path / "run", out=out, int8=int8)
        clf = OnnxClassifier.from_dir(out, threads=1)
        alone = np.concatenate([clf.logits(f[None], np.ones((1, f.shape[-1]), np.int64)) for f in feats])
        x, mask = pad_batch(feats)
        together = clf.logits(x, mask)
        # int8 quantises activations with one scale per tensor, over the whole batch: close, not exact
        np.testing.assert_allclose(together, alone, atol=2e-2 if int8 else 1e-4)
        assert x.shape[-1] == feats[-1].shape[-1] and len({f.shape[-1] for f in feats}) == 3
