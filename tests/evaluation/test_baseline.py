"""The eGeMAPS baseline: evaluate-compatible metrics.json, feature cache, speaker norm, CV, real RAVDESS."""
import json

import numpy as np
import pandas as pd
import pytest

import emovox.evaluation.baseline as baseline
from emovox.evaluation.baseline import run_baseline, speaker_normalise
from emovox.labels import get_scheme
from emovox.evaluation.metrics import classification_metrics

EVALUATE_EXTRA = {"split", "n_errors", "manifest_fingerprint"}


def _evaluate_keys(scheme: str) -> set[str]:
    s = get_scheme(scheme)
    return set(classification_metrics([0, 1], np.eye(len(s))[[0, 1]], s)) | EVALUATE_EXTRA


def test_tiny_baseline_writes_the_evaluate_report(tiny_manifest, tmp_path, monkeypatch):
    m = run_baseline(manifest=tiny_manifest, out=tmp_path, workers=1)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == _evaluate_keys("crema-d-6") and saved["split"] == "test" and saved["n"] == m["n"] > 0
    for name in ("confusion_matrix.png", "confusion_matrix.csv", "report.md", "features.csv", "baseline.json"):
        assert (tmp_path / name).exists(), name
    assert len(pd.read_csv(tmp_path / "features.csv")) == 48
    assert json.loads((tmp_path / "baseline.json").read_text())["C"] in baseline.C_GRID

    def no_extraction(path):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(baseline, "clip_features", no_extraction)
    assert run_baseline(manifest=tiny_manifest, out=tmp_path, workers=1) == m  # cached features are exact
    from emovox.cli import main

    assert main(["baseline", "--manifest", str(tiny_manifest), "--out", str(tmp_path), "--speaker-norm",
                 "--folds", "2", "--workers", "1"]) == 0
    summary = json.loads((tmp_path / "cv_metrics.json").read_text())
    assert summary["speaker_norm"] and len(summary["per_fold"]) == 2
    assert summary["mean"]["uar"] == pytest.approx(np.mean([r["uar"] for r in summary["per_fold"]]))
    assert main(["baseline", "--manifest", str(tiny_manifest), "--out", str(tmp_path), "--split", "nope"]) == 2


def test_baseline_cv_confirm_holds_the_test_speakers_out(tiny_manifest, tmp_path):
    """As ``cv --confirm``: the folds never contain the test split's speakers, and the confirmation
    row is the plain baseline on the manifest's own splits (the same fit, the same test clips)."""
    from emovox.cli import main
    from emovox.evaluation.baseline import cross_validate_baseline

    df = pd.read_csv(tiny_manifest, dtype=str, keep_default_na=False)
    held = set(df.loc[df["split"] == "test", "speaker"])
    res = cross_validate_baseline(manifest=tiny_manifest, out=tmp_path / "cv", folds=2, workers=1, confirm=True)
    assert all(not set(r["speakers"]) & held for r in res.per_fold)
    assert sum(r["n"] for r in res.per_fold) == int((df["split"] != "test").sum())
    plain = run_baseline(manifest=tiny_manifest, out=tmp_path / "plain", workers=1)
    c = json.loads((tmp_path / "cv" / "cv_metrics.json").read_text())["confirmation"]
    assert set(c["speakers"]) == held and c["n"] == plain["n"] and c["uar"] == pytest.approx(plain["uar"])
    assert "confirmation (held out of every fold)" in (tmp_path / "cv" / "cv_report.md").read_text()
    lone = tmp_path / "lone.csv"
    df.assign(split=df["split"].replace("test", "train")).to_csv(lone, index=False)
    assert main(["baseline", "--manifest", str(lone), "--out", str(tmp_path / "x"), "--folds", "2", "--confirm",
                 "--workers", "1"]) == 2


def test_speaker_normalise_zscores_within_each_speaker():
    X = pd.DataFrame({"a": [1.0, 3.0, 10.0, 30.0, 5.0], "b": [2.0, 2.0, 0.0, 4.0, 7.0]})
    Z = speaker_normalise(X, ["s1", "s1", "s2", "s2", "s3"])
    assert Z["a"].tolist() == pytest.approx([-1, 1, -1, 1, 0])
    assert Z["b"].tolist() == pytest.approx([0, 0, -1, 1, 0])  # constant within s1 and single-clip s3: 0


def test_real_ravdess_well_above_chance(real_data, tmp_path):
    """Four actors, statement 01 only (120 clips, ~11 s of extraction CPU): a real-speech smoke test.

    The full-corpus numbers (960 clips, 4-fold CV) are in the measurements, not in the test suite.
    """
    from emovox.data.prepare import prepare

    root = tmp_path / "ravdess"
    for actor in range(1, 5):
        (root / f"Actor_{actor:02d}").mkdir(parents=True)
        for f in sorted((real_data / "ravdess16k" / f"Actor_{actor:02d}").glob("03-01-??-??-01-??-??.flac")):
            (root / f"Actor_{actor:02d}" / f.name).symlink_to(f)
    manifest = prepare(corpus="ravdess", root=root, out=tmp_path / "prepared", workers=1).manifest
    m = run_baseline(manifest=manifest, out=tmp_path / "b", speaker_norm=True, workers=2)
    assert m["uar"] > 0.3 and m["n"] == 30  # chance is 1/8; one test speaker
