import json

import pandas as pd
import pytest

from emovox.evaluation.evaluate import evaluate
from emovox.rundir import read_meta, open_run
from emovox.testing import make_broken_files


EXPECTED = {"confusion_matrix.png", "confusion_matrix.csv", "confusion_matrix_normalised.csv", "metrics.json",
            "misclassified.csv", "predictions.csv", "reliability.png", "reliability.csv", "report.md"}


def test_writes_every_file_with_design_keys(tiny_run, tiny_manifest, tmp_path):
    evaluate(runs=[tiny_run], manifest=tiny_manifest, out=tmp_path / "e")
    assert EXPECTED <= {p.name for p in (tmp_path / "e").iterdir()}
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    for key in ("accuracy", "uar", "macro_f1", "loss", "n", "majority_accuracy", "per_class", "ece"):
        assert key in saved
    test_rows = pd.read_csv(tiny_manifest).query("split == 'test'")
    assert saved["n"] == len(test_rows)
    preds = pd.read_csv(tmp_path / "e" / "predictions.csv")
    assert (preds["true"] == preds["predicted"]).mean() == pytest.approx(saved["accuracy"])
    wrong = pd.read_csv(tmp_path / "e" / "misclassified.csv")
    assert list(wrong.columns) == ["path", "true", "predicted", "confidence"]
    assert len(wrong) == int(round((1 - saved["accuracy"]) * saved["n"]))
    assert wrong["confidence"].is_monotonic_decreasing
    cm = pd.read_csv(tmp_path / "e" / "confusion_matrix.csv", index_col=0)
    assert cm.to_numpy().sum() == saved["n"]
    assert "majority baseline" in (tmp_path / "e" / "report.md").read_text()


def test_bad_files_are_listed_not_fatal(tiny_run, tiny_manifest, tmp_path):
    df = pd.read_csv(tiny_manifest)
    bad = make_broken_files(tmp_path / "bad")
    extra = df[df.split == "test"].head(1).copy()
    extra["path"] = str(bad["text"])
    (tmp_path / "m").mkdir()
    pd.concat([df, extra]).to_csv(tmp_path / "m" / "manifest.csv", index=False)
    m = evaluate(runs=[tiny_run], manifest=tmp_path / "m" / "manifest.csv", out=tmp_path / "e")
    assert m["n_errors"] == 1 and m["n"] == (df.split == "test").sum()
    assert "not readable" in (tmp_path / "e" / "errors.csv").read_text()


def test_ensemble_and_compare(tiny_run, tiny_manifest, tmp_path):
    m = evaluate(runs=[tiny_run, tiny_run], manifest=tiny_manifest, out=tmp_path / "ens")
    assert set(m["members"]) == {str(tiny_run)} and "Ensemble vs members" in (tmp_path / "ens" / "report.md").read_text()
    c = evaluate(runs=[tiny_run, tiny_run], manifest=tiny_manifest, out=tmp_path / "cmp", compare=True)
    assert "runs" in c and "Runs side by side" in (tmp_path / "cmp" / "report.md").read_text()


def test_temperature_is_fitted_and_stored(tiny_run):
    t = read_meta(open_run(tiny_run))["temperature"]
    assert 0.05 <= t <= 20 and t != 1.0


def test_temperature_is_folded_into_the_classifier(tiny_run, tmp_path):
    """Calibrated scores come from the saved weights themselves, so pipeline and predict agree."""
    import torch
    from safetensors.torch import load_file

    meta = read_meta(open_run(tiny_run))
    assert meta["temperature_in_weights"] is True
    final = load_file(tiny_run / "model.safetensors")["classifier.weight"]
    best = load_file(meta["best_checkpoint"] + "/model.safetensors")["classifier.weight"]
    torch.testing.assert_close(final * meta["temperature"], best, atol=1e-5, rtol=1e-4)


def test_flat_and_multitask_side_by_side_on_synthetic(tmp_path):
    """The synthetic CREMA-D corpus, 21 classes: flat and multi-task heads compared in one report."""
    from emovox.data.synthetic import make_demo_corpus
    from emovox.data.prepare import prepare
    from emovox.training.train import train

    make_demo_corpus(out=tmp_path / "c", speakers=4, sentences=("IEO", "DFA"), workers=1)
    manifest = prepare(corpus="crema-d", root=tmp_path / "c", out=tmp_path / "p", workers=1).manifest
    common = ["training.max_steps=4", "training.eval_steps=2", "augment.enabled=false", "data.max_seconds=1.0",
              "training.per_device_train_batch_size=8"]
    flat = train(manifest=manifest, out=tmp_path / "flat", model="tiny", overrides=common, progress=False).run_dir
    mt = train(manifest=manifest, out=tmp_path / "mt", model="tiny", overrides=[*common, "model.multitask=true"],
               progress=False).run_dir
    m = evaluate(runs=[flat, mt], manifest=manifest, out=tmp_path / "e", compare=True)
    assert set(m["runs"]) == {str(flat), str(mt)}
    for r in m["runs"].values():
        assert {"accuracy", "uar", "emotion_uar", "intensity_uar"} <= set(r)
    report = (tmp_path / "e" / "report.md").read_text()
    assert "Runs side by side" in report and "emotion_uar" in report and str(mt) in report
