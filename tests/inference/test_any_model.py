"""Any audio-classification model, everywhere: folders that ``save_pretrained`` wrote for
wav2vec2, HuBERT, WavLM and data2vec-audio classifiers emovox never trained (random weights,
their own label names, no emovox.json) predict like ``transformers.pipeline``, and evaluate and
export work on them."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emovox.data.audio import load_audio
from emovox.errors import BadRunDir
from emovox.inference.export import export_onnx
from emovox.inference.predict import Predictor
from emovox.models.source import looks_like_model, open_source
from emovox.testing import FOREIGN_FAMILIES, save_foreign_model, write_tone

LABELS = ("serene", "irritated", "glum", "elated")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign_clips")
    return [write_tone(root / f"c{i}.wav", 0.6 + 0.37 * i, freq=150.0 + 40 * i, seed=i) for i in range(4)]


def _pipeline_check(model_dir, files, predictor):
    from transformers import pipeline

    pipe = pipeline("audio-classification", model=str(model_dir), device="cpu")
    rows = list(predictor.predict_files([str(f) for f in files], top_k=len(LABELS)))
    for f, row in zip(files, rows):
        ref = pipe(load_audio(f), top_k=len(LABELS))
        assert row["label"] == ref[0]["label"]
        ours = {t["label"]: t["score"] for t in row["top_k"]}
        assert set(ours) == set(LABELS)
        for r in ref:
            assert ours[r["label"]] == pytest.approx(r["score"], abs=1e-4)


@pytest.mark.parametrize("model_type", FOREIGN_FAMILIES)
def test_foreign_model_predicts_like_the_pipeline(model_type, tmp_path, clips):
    model_dir = save_foreign_model(tmp_path / model_type, model_type=model_type, labels=LABELS, seed=3)
    source = open_source(model_dir)
    assert not source.is_run_dir and source.scheme.labels == LABELS and source.defaults
    _pipeline_check(model_dir, clips, Predictor.from_run_dir(model_dir))


def test_group_norm_model_without_mask_also_agrees(tmp_path, clips):
    model_dir = save_foreign_model(tmp_path / "g", model_type="hubert", labels=LABELS, norm="group", seed=5)
    _pipeline_check(model_dir, clips, Predictor.from_run_dir(model_dir))


def test_model_folder_without_preprocessor_uses_the_family_default(tmp_path, clips):
    model_dir = save_foreign_model(tmp_path / "m", labels=LABELS)
    reference = Predictor.from_run_dir(model_dir).probs([load_audio(clips[0])])
    (model_dir / "preprocessor_config.json").unlink()
    np.testing.assert_allclose(Predictor.from_run_dir(model_dir).probs([load_audio(clips[0])]), reference, atol=1e-6)


def test_init_model_output_predicts(tmp_path, clips):
    from emovox.labels import get_scheme
    from emovox.models.presets import init_model

    model_dir = init_model(size="tiny", scheme=get_scheme("crema-d-6"), out=tmp_path / "init")
    rows = list(Predictor.from_run_dir(model_dir).predict_files([str(c) for c in clips]))
    assert [r["label"] in get_scheme("crema-d-6").labels for r in rows] == [True] * len(clips)


def test_cli_predict_evaluate_export_on_a_foreign_model(tmp_path, clips):
    model_dir = save_foreign_model(tmp_path / "wavlm", model_type="wavlm", labels=LABELS, seed=1)
    cli = [sys.executable, "-m", "emovox.cli"]
    r = subprocess.run([*cli, "predict", str(model_dir), *map(str, clips)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["path"] for row in rows] == list(map(str, clips)) and all(row["label"] in LABELS for row in rows)
    assert "no emovox.json" in r.stderr and "labels from config.json (4)" in r.stderr

    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": list(map(str, clips)), "speaker": ["a", "a", "b", "b"], "sentence": "", "emotion": "",
                  "intensity": "", "label": [LABELS[i % 4] for i in range(4)], "duration": 1.0, "split": "test",
                  "corpus": "csv"}).to_csv(manifest, index=False)
    r = subprocess.run([*cli, "evaluate", str(model_dir), "--manifest", str(manifest), "--out", str(tmp_path / "ev")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 4 and set(metrics["per_class"]) == set(LABELS)
    assert "assumed" in (tmp_path / "ev" / "report.md").read_text()

    r = subprocess.run([*cli, "export", str(model_dir), "--out", str(tmp_path / "onnx")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    onnx_rows = subprocess.run([*cli, "predict", str(tmp_path / "onnx"), *map(str, clips), "--backend", "onnx"],
                               capture_output=True, text=True)
    assert onnx_rows.returncode == 0, onnx_rows.stderr
    for a, b in zip(rows, map(json.loads, onnx_rows.stdout.splitlines())):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_export_of_a_foreign_model_has_parity(tmp_path):
    model_dir = save_foreign_model(tmp_path / "d2v", model_type="data2vec-audio", labels=LABELS)
    res = export_onnx(run_dir=model_dir, out=tmp_path / "x")
    assert res.max_prob_diff < 1e-4 and res.top1_agreement == 1.0
    assert (tmp_path / "x" / "preprocessor_config.json").is_file()


def test_what_counts_as_a_model(tmp_path, clips):
    model_dir = save_foreign_model(tmp_path / "w", labels=LABELS)
    assert looks_like_model(model_dir) and looks_like_model("facebook/wav2vec2-base")
    assert not looks_like_model(clips[0]) and not looks_like_model(clips[0].parent)
    assert not looks_like_model("missing/clip.wav")
    with pytest.raises(BadRunDir, match="not a directory"):
        open_source(tmp_path / "nope")
    (tmp_path / "weightless").mkdir()
    (tmp_path / "weightless" / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    with pytest.raises(BadRunDir, match=r"weightless.*model\.safetensors"):
        Predictor.from_run_dir(tmp_path / "weightless")
    (tmp_path / "speech2text").mkdir()
    (tmp_path / "speech2text" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadRunDir, match="speech2text.*BertConfig.*AutoModelForAudioClassification"):
        Predictor.from_run_dir(tmp_path / "speech2text")


def test_a_model_of_another_family_is_scored_as_it_is(tmp_path, clips):
    """An audio spectrogram transformer (no emovox backbone): predict agrees with the pipeline."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_length=64,
                    num_mel_bins=32, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                    label2id={lab: i for i, lab in enumerate(LABELS)})
    ASTForAudioClassification(cfg).eval().save_pretrained(tmp_path / "ast")
    ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(tmp_path / "ast")
    _pipeline_check(tmp_path / "ast", clips, Predictor.from_run_dir(tmp_path / "ast"))
