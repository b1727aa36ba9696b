"""Ensembles as one model: ``emovox ensemble`` writes one run dir that predict, evaluate, serve and
export treat as one model (averaged probabilities, one temperature fitted on validation)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emovox.cli import main
from emovox.errors import BadConfig, BadRunDir
from emovox.inference.export import synthetic_waves
from emovox.inference.predict import Predictor
from emovox.labels import get_scheme
from emovox.models.ensemble import is_ensemble
from emovox.testing import save_foreign_model, write_tone
from emovox.training.ensemble_build import assemble, build_ensemble

LABELS = get_scheme("crema-d-6").labels


def _with_temperature(path: Path, temperature: float) -> Path:
    """Make a save_pretrained folder an emovox run dir with a fitted temperature."""
    meta = {"scheme": {"name": "crema-d-6", "labels": list(LABELS)}, "temperature": temperature, "max_seconds": 2.0}
    (path / "emovox.json").write_text(json.dumps(meta))
    return path


def _tiny_whisper_classifier(out: Path, *, d_model: int, positions: int, seed: int) -> Path:
    """A randomly initialised Whisper classifier (emovox's own-length class) with crema-d-6 labels."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor

    from emovox.models.backbones.whisper import own_length_classifier

    torch.manual_seed(seed)
    cfg = WhisperConfig(d_model=d_model, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=2 * d_model, decoder_ffn_dim=2 * d_model,
                        vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                        max_source_positions=positions, num_mel_bins=80, classifier_proj_size=16,
                        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                        label2id={lab: i for i, lab in enumerate(LABELS)})
    own_length_classifier()(cfg).eval().save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("members")
    a = _with_temperature(save_foreign_model(d / "a", labels=LABELS, seed=0), 2.0)
    b = _with_temperature(save_foreign_model(d / "b", labels=LABELS, seed=1), 0.5)
    c = save_foreign_model(d / "c", labels=LABELS, seed=2)  # a plain save_pretrained folder: temperature 1
    return [a, b, c]


@pytest.fixture(scope="module")
def ensemble(members, tiny_manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ens") / "ens"
    assert main(["ensemble", *map(str, members), "--out", str(out), "--manifest", str(tiny_manifest)]) == 0
    return out


def test_probabilities_are_the_mean_of_the_members(members, tmp_path):
    out = assemble(members, tmp_path / "ens")
    waves = synthetic_waves((0.6, 1.3, 1.9))
    ens = Predictor.from_run_dir(out).probs(waves)
    each = [Predictor.from_run_dir(m).probs(waves) for m in members]
    np.testing.assert_allclose(ens, np.mean(each, axis=0), atol=1e-6)
    np.testing.assert_allclose(ens, Predictor.from_run_dir(members).probs(waves), atol=1e-6)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the members differ, so the mean is a real test
    meta = json.loads((out / "emovox.json").read_text())
    assert is_ensemble(out) and [m["temperature"] for m in meta["members"]] == [2.0, 0.5, 1.0]


def test_temperature_is_fitted_on_validation_and_applied(ensemble, members, tiny_manifest):
    meta = json.loads((ensemble / "emovox.json").read_text())
    fit = meta["temperature_fit"]
    assert fit["split"] == "validation" and fit["clips"] > 0 and meta["temperature"] == fit["temperature"]
    assert fit["nll_after"] <= fit["nll_before"] + 1e-9
    waves = synthetic_waves((1.1,))
    mean = Predictor.from_run_dir(members).probs(waves)[0].astype(np.float64)
    z = np.log(mean) / meta["temperature"]
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(Predictor.from_run_dir(ensemble).probs(waves)[0], expected, atol=1e-5)
    with pytest.raises(BadConfig, match="never on the test split"):
        build_ensemble(runs=members, out=ensemble.parent / "t", manifest=tiny_manifest, split="test")


def test_no_temperature_from_speakers_a_member_trained_on(members, tiny_manifest, tmp_path):
    """Members refit on train + validation (training.head_refit) are over-confident on the validation
    speakers: the temperature is not fitted there, and the output says why."""
    from emovox.training.ensemble_build import summary_line

    refit = []
    for m in members[:2]:
        copy = tmp_path / m.name
        shutil.copytree(m, copy)
        meta = json.loads((copy / "emovox.json").read_text())
        meta.update(manifest=str(tiny_manifest), config={"training": {"head_refit": True}})
        (copy / "emovox.json").write_text(json.dumps(meta))
        refit.append(copy)
    r = build_ensemble(runs=refit, out=tmp_path / "ens", manifest=tiny_manifest)
    assert r.temperature == 1.0 and "validation speakers" in r.fit["skipped"] and "head_refit" in r.fit["skipped"]
    assert "not fitted" in summary_line(r) and "not fitted" in (tmp_path / "ens" / "README.md").read_text()


def test_predict_evaluate_and_card(ensemble, tiny_manifest, tmp_path, capsys):
    clip = write_tone(tmp_path / "clip.wav", 1.2, freq=240)
    assert main(["predict", str(ensemble), str(clip)]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    p = Predictor.from_run_dir(ensemble)
    expected = p.row(str(clip), next(iter(p.scored([clip])))[1], 3)
    assert row["label"] == expected["label"] and row["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert main(["evaluate", str(ensemble), "--manifest", str(tiny_manifest), "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] > 0
    card = (ensemble / "README.md").read_text()
    assert "ensemble of 3 models" in card and "## Ensemble" in card and "member temperature" in card
    from emovox.modelcard import load_card

    assert load_card(ensemble).data.library_name == "emovox"


def test_serve_scores_the_ensemble_as_one_model(ensemble, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from emovox.inference.serve_app import create_app
    from emovox.inference.serve_io import ServeSettings

    clip = write_tone(tmp_path / "s.wav", 0.9, freq=200)
    p = Predictor.from_run_dir(ensemble)
    (tmp_path / "up").mkdir()
    with TestClient(create_app(lambda: p, ServeSettings(tmp_dir=str(tmp_path / "up")))) as c:
        assert c.app.state.emovox.loaded.wait(60)
        rows = c.post("/v1/predict", files=[("file", ("s.wav", clip.read_bytes(), "audio/wav"))]).json()
    got = rows[0] if isinstance(rows, list) else rows
    assert got["label"] == p.row("s", next(iter(p.scored([clip])))[1], 1)["label"]


def test_export_is_one_onnx_graph_with_parity(ensemble, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["export", str(ensemble), "--out", str(out)]) == 0
    assert "parity vs torch" in capsys.readouterr().out
    import onnx

    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_values", "attention_mask"] and len(graph.output) == 1
    waves = synthetic_waves((0.8, 1.7))
    np.testing.assert_allclose(Predictor.from_run_dir(out, backend="onnx").probs(waves),
                               Predictor.from_run_dir(ensemble).probs(waves), atol=1e-4)


def test_mismatched_labels_are_refused_in_one_line(members, tmp_path, capsys):
    other = save_foreign_model(tmp_path / "other", labels=list(reversed(LABELS)))
    capsys.readouterr()
    assert main(["ensemble", str(members[0]), str(other), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "labels differ" in err and str(other) in err
    assert not (tmp_path / "e").exists()


def test_members_needing_other_inputs_are_refused(members, tmp_path):
    whisper = _tiny_whisper_classifier(tmp_path / "w", d_model=16, positions=200, seed=0)
    with pytest.raises(BadRunDir, match="must share one front end") as e:
        assemble([members[0], whisper], tmp_path / "e")
    assert "\n" not in str(e.value)
    plain = save_foreign_model(tmp_path / "plain", labels=LABELS, seed=3)
    settings = json.loads((plain / "preprocessor_config.json").read_text())
    (plain / "preprocessor_config.json").write_text(json.dumps({**settings, "do_normalize": False}))
    with pytest.raises(BadRunDir, match="different inputs"):
        assemble([members[0], plain], tmp_path / "e2")
    with pytest.raises(BadRunDir, match="two or more"):
        assemble(members[:1], tmp_path / "e3")


def test_whisper_members_of_two_sizes(tmp_path):
    """Encoders of two sizes (as whisper-tiny.en and whisper-base) share the log-mel front end."""
    small = _tiny_whisper_classifier(tmp_path / "small", d_model=16, positions=250, seed=0)
    large = _tiny_whisper_classifier(tmp_path / "large", d_model=32, positions=300, seed=1)
    out = assemble([large, small], tmp_path / "ens")
    p = Predictor.from_run_dir(out)
    assert p.window_seconds == pytest.approx(5.0)  # the shorter member's 250 positions: windows fit both
    waves = synthetic_waves((0.7, 2.2))
    each = [Predictor.from_run_dir(m).probs(waves) for m in (large, small)]
    np.testing.assert_allclose(p.probs(waves), np.mean(each, axis=0), atol=1e-6)
    from emovox.inference.export import export_onnx

    r = export_onnx(run_dir=out, out=tmp_path / "onnx")
    assert r.max_prob_diff < 1e-4 and r.top1_agreement == 1.0
    r8 = export_onnx(run_dir=out, out=tmp_path / "int8", int8=True)  # each member's encoder smoothed for int8
    assert r8.smoothed and r8.top1_agreement == 1.0
