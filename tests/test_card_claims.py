"""The card tells the truth: where it names ``pipeline("audio-classification")`` (library_name
transformers), a plain pipeline gives emovox's top-1 and scores within 1e-4; where it does not, the
pipeline really differs, and the card says how."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emovox.data.audio import load_audio
from emovox.inference.predict import Predictor
from emovox.modelcard import load_card
from emovox.testing import save_tiny_whisper, write_tone
from emovox.training.train import train

HEAD = ["model.freeze_backbone=true", "model.cache_features=true", "training.max_steps=30", "training.eval_steps=10",
        "training.learning_rate=3e-2", "training.per_device_train_batch_size=8", "augment.enabled=false",
        "data.max_seconds=5.0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Synthetic clips of several lengths, and real RAVDESS clips of actors 13-16 when present."""
    out = tmp_path_factory.mktemp("claims")
    paths = [write_tone(out / f"t{i}.wav", 0.6 + 0.9 * i, freq=150 + 40 * i, seed=i) for i in range(4)]
    from emovox.testing import test_data_dir

    data = test_data_dir()
    if data is not None:
        real = sorted((data / "ravdess16k").glob("Actor_1[3-6]/*.flac"))[::41][:8]
        paths += [p for p in real if len(load_audio(p)) < 4.5 * 16000]
    return [str(p) for p in paths]


def claims_hold(run: Path, files: list[str]) -> tuple[bool, float]:
    """Check the card's claim against a plain pipeline; return (claims pipeline, max score gap)."""
    from transformers import pipeline

    card, meta = load_card(run), json.loads((run / "emovox.json").read_text())
    says_pipeline = card.data.library_name == "transformers"
    assert meta["loaders"]["transformers_pipeline"] is says_pipeline
    usage = (run / "README.md").read_text().split("## How to use")[1]
    code = ("classifier = pipeline(", "emovox predict ")
    shows_first = code[0] in usage and usage.index(code[0]) < usage.index(code[1])
    assert shows_first is says_pipeline
    predictor = Predictor.from_run_dir(run)
    n = len(predictor.scheme.labels)
    pipe = pipeline("audio-classification", model=str(run), device="cpu")
    gap, same_top = 0.0, True
    for row in predictor.predict_files(files, top_k=n):
        ref = pipe(load_audio(row["path"]), top_k=n)
        ours = {t["label"]: t["score"] for t in row["top_k"]}
        gap = max(gap, max(abs(ours[r["label"]] - r["score"]) for r in ref))
        same_top &= row["label"] == ref[0]["label"]
    if says_pipeline:
        assert same_top and gap < 1e-4, gap
    else:
        assert gap > 1e-4 and meta["loaders"]["pipeline_differences"], gap  # the card's warning is true
    return says_pipeline, gap


def test_wav2vec2_stock_head_card_names_the_pipeline_and_it_agrees(tiny_run, files):
    assert claims_hold(tiny_run, files)[0]


def test_trimmed_wav2vec2_run_card_says_what_the_pipeline_misses(tiny_manifest, files, tmp_path):
    run = train(manifest=tiny_manifest, out=tmp_path / "r", model="tiny", progress=False,
                overrides=[*HEAD, "model.trim_silence_db=20"]).run_dir
    silent = tmp_path / "padded.wav"  # leading and trailing silence the run cuts and the pipeline keeps
    import soundfile as sf

    wave = load_audio(files[1])
    sf.write(silent, np.concatenate([np.zeros(8000, np.float32), wave, np.zeros(8000, np.float32)]), 16000)
    assert not claims_hold(run, [str(silent), *files])[0]
    assert "silence" in " ".join(json.loads((run / "emovox.json").read_text())["loaders"]["pipeline_differences"])


@pytest.mark.parametrize("pad", [False, True], ids=["own-length", "pad-to-window"])
def test_whisper_card_claims_match_the_pipeline(pad, tiny_manifest, files, tmp_path):
    encoder = save_tiny_whisper(tmp_path / "whisper", d_model=64)
    run = train(manifest=tiny_manifest, out=tmp_path / "run", model=str(encoder), progress=False,
                overrides=[*HEAD, f"model.pad_to_window={str(pad).lower()}"]).run_dir
    says_pipeline, _ = claims_hold(run, files)
    assert says_pipeline is pad
    if not pad:
        text = (run / "README.md").read_text()
        assert "model.pad_to_window=true" in text and "own length" in text
