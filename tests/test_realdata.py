"""Real speech (RAVDESS from ../shared/data): train a few steps, loss falls, evaluate/predict on FLAC."""
import json

import pandas as pd
import pytest

from emovox.evaluation.evaluate import evaluate
from emovox.inference.predict import Predictor
from emovox.data.prepare import prepare
from emovox.rundir import RunDir
from emovox.training.train import train


@pytest.fixture(scope="module")
def ravdess_small(real_data, tmp_path_factory):
    """Four actors, speaker-disjoint: enough for a quick real-audio run."""
    out = tmp_path_factory.mktemp("rav")
    res = prepare(corpus="ravdess", root=real_data / "ravdess16k", out=out / "all")
    df = pd.read_csv(res.manifest)
    keep = df[df.speaker.astype(str).str.zfill(2).isin(["01", "02", "03", "04"])].copy()
    keep["split"] = keep.speaker.astype(str).str.zfill(2).map({"01": "train", "02": "train", "03": "validation",
                                                               "04": "test"})
    (out / "small").mkdir()
    keep.to_csv(out / "small" / "manifest.csv", index=False)
    return out / "small" / "manifest.csv"


def test_tiny_model_learns_on_real_flac(ravdess_small, tmp_path):
    run = tmp_path / "run"
    train(manifest=ravdess_small, out=run, model="tiny", progress=False, overrides=[
        "training.max_steps=16", "training.eval_steps=8", "training.logging_steps=2", "training.learning_rate=2e-3",
        "training.per_device_train_batch_size=8", "training.warmup_ratio=0", "augment.enabled=false",
        "data.max_seconds=2.0", "model.freeze_feature_encoder=false"])
    losses = [json.loads(r)["loss"] for r in RunDir(run).log.read_text().splitlines() if '"loss"' in r]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    m = evaluate(runs=[run], manifest=ravdess_small, out=tmp_path / "eval")
    assert m["n"] == 60 and m["n_errors"] == 0
    flacs = list(pd.read_csv(ravdess_small).query("split == 'test'").path[:5])
    rows = list(Predictor.from_run_dir(run).predict_files(flacs))
    assert all("label" in r and 0 < r["score"] <= 1 for r in rows)
