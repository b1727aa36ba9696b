"""Cross-validation: speaker-disjoint folds, the summary's mean/std, and reuse of finished folds."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from emovox.data.splits import fold_manifests
from emovox.evaluation.cv_report import summarise_folds
from emovox.training.cv import cross_validate
from emovox.errors import BadManifest, BadRunDir
from emovox.data.manifest import load_manifest
from emovox.data.splits import leaked_speakers

FAST = ["training.max_steps=2", "training.eval_steps=2", "training.logging_steps=1",
        "training.per_device_train_batch_size=4", "training.per_device_eval_batch_size=16",
        "training.learning_rate=1e-3", "training.warmup_ratio=0.0", "augment.enabled=false",
        "data.max_seconds=0.5"]


def test_folds_are_speaker_disjoint_and_test_everyone_once(tiny_manifest):
    df = load_manifest(tiny_manifest)
    tested = []
    for fold in fold_manifests(df, folds=3, seed=1):
        assert len(fold) == len(df) and set(fold["split"]) == {"train", "validation", "test"}
        assert not leaked_speakers(fold)
        tested += sorted(fold.loc[fold["split"] == "test", "speaker"].unique())
    assert sorted(tested) == sorted(df["speaker"].unique())


def test_folds_ignore_the_manifest_split_and_need_speakers(tiny_manifest):
    df = load_manifest(tiny_manifest).assign(split="train")
    assert len(list(fold_manifests(df, folds=2))) == 2
    with pytest.raises(BadManifest, match="6"):
        list(fold_manifests(df, folds=7))
    with pytest.raises(BadManifest, match="speaker"):
        list(fold_manifests(df.assign(speaker=""), folds=2))


def test_summary_is_mean_and_sample_std():
    rows = [{"uar": 0.2, "accuracy": 0.5}, {"uar": 0.4, "accuracy": 0.7}, {"uar": 0.9, "accuracy": 0.6}]
    mean, std = summarise_folds(rows)
    assert mean["uar"] == pytest.approx(0.5) and std["uar"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert "loss" not in mean


def test_cross_validate_two_folds(tiny_manifest, tmp_path):
    out = tmp_path / "cv"
    res = cross_validate(config=None, manifest=tiny_manifest, folds=2, out=out, model="tiny", overrides=FAST,
                         progress=False)
    summary = json.loads((out / "cv_metrics.json").read_text())
    assert set(summary["mean"]) == set(summary["std"]) == {"accuracy", "uar", "macro_f1", "loss"}
    table = pd.DataFrame(summary["per_fold"])
    assert list(table.columns[:6]) == ["fold", "speakers", "n", "accuracy", "uar", "macro_f1"]
    assert table["n"].sum() == len(load_manifest(tiny_manifest))
    for key in ("accuracy", "uar", "macro_f1", "loss"):
        assert summary["mean"][key] == pytest.approx(table[key].mean())
        assert summary["std"][key] == pytest.approx(table[key].std(ddof=1))
    speakers = [set(s) for s in table["speakers"]]
    assert not speakers[0] & speakers[1]
    for k in (1, 2):
        fold = load_manifest(out / f"fold-{k}" / "manifest.csv")
        assert not leaked_speakers(fold)
        assert set(fold.loc[fold["split"] == "test", "speaker"]) == speakers[k - 1]
        metrics = json.loads((out / f"fold-{k}" / "eval" / "metrics.json").read_text())
        assert metrics["uar"] == pytest.approx(table.loc[k - 1, "uar"])
    assert "±" in (out / "cv_report.md").read_text() and res.mean == summary["mean"]
    # finished folds are reused: training again into fold-K/run would refuse (it holds checkpoints)
    again = cross_validate(config=None, manifest=tiny_manifest, folds=2, out=out, model="tiny", overrides=FAST,
                           progress=False)
    assert again.per_fold == res.per_fold
    # a fold cut off after its last checkpoint resumes from it instead of refusing or starting over
    shutil.rmtree(out / "fold-2" / "eval")
    (out / "fold-2" / "run" / "emovox.json").unlink()
    resumed = cross_validate(config=None, manifest=tiny_manifest, folds=2, out=out, model="tiny", overrides=FAST,
                             progress=False)
    assert resumed.per_fold[1]["n"] == res.per_fold[1]["n"] and (out / "fold-2" / "run" / "emovox.json").exists()
    with pytest.raises(BadRunDir, match="fold-1"):  # other settings never mix with finished folds
        cross_validate(config=None, manifest=tiny_manifest, folds=2, out=out, model="tiny",
                       overrides=[*FAST, "training.max_steps=3"], progress=False)


def test_cli_cv_names_the_problem(tiny_manifest, tmp_path, capsys):
    from emovox.cli import main

    assert main(["cv", "--manifest", str(tiny_manifest), "--folds", "7", "--out", str(tmp_path)]) == 2
    assert "7 speakers" in capsys.readouterr().err


def test_confirm_keeps_the_test_speakers_out_of_every_fold_and_scores_them_once(tiny_manifest, tmp_path, capsys):
    """Choose on some speakers, confirm on others: the folds never see the manifest's test speakers;
    one run trained on its train + validation splits is scored on them and reported beside the mean."""
    from emovox.cli import main

    df = load_manifest(tiny_manifest)
    held = set(df.loc[df["split"] == "test", "speaker"])
    assert held and held != set(df["speaker"])
    out = tmp_path / "cv"
    res = cross_validate(config=None, manifest=tiny_manifest, folds=2, out=out, model="tiny", overrides=FAST,
                         confirm=True, progress=False)
    for k in (1, 2):
        fold = load_manifest(out / f"fold-{k}" / "manifest.csv")
        assert not set(fold["speaker"]) & held and len(fold) == int((df["split"] != "test").sum())
    assert sum(r["n"] for r in res.per_fold) == int((df["split"] != "test").sum())
    summary = json.loads((out / "cv_metrics.json").read_text())
    conf = summary["confirmation"]
    assert set(conf["speakers"]) == held and conf["n"] == int((df["split"] == "test").sum())
    scored = json.loads((out / "confirm" / "eval" / "metrics.json").read_text())
    assert conf["uar"] == pytest.approx(scored["uar"]) and res.confirmation == conf
    trained_on = load_manifest(out / "confirm" / "manifest.csv")
    assert (trained_on["split"].to_numpy() == df["split"].to_numpy()).all()  # the manifest's own splits
    report = (out / "cv_report.md").read_text()
    assert "| confirmation (held out of every fold) | " + ", ".join(sorted(held)) in report
    assert any(line.startswith("confirmation on held-out speakers") for line in res.summary_lines())
    # a manifest with no test split cannot be confirmed: one line, exit 2
    lone = tmp_path / "lone.csv"
    df.assign(split=df["split"].replace("test", "train")).to_csv(lone, index=False)
    assert main(["cv", "--manifest", str(lone), "--folds", "2", "--out", str(tmp_path / "x"), "--confirm"]) == 2
    err = capsys.readouterr().err
    assert "--confirm" in err and "0 test row(s)" in err and "Traceback" not in err
    # a test speaker who also trains would still be seen by the folds: refused, naming the speaker
    leaky = tmp_path / "leaky.csv"
    spk = sorted(held)[0]
    first = df.index[(df["speaker"] == spk)][0]
    df.assign(split=df["split"].where(df.index != first, "train")).to_csv(leaky, index=False)
    with pytest.raises(BadManifest, match=f"no other split has; 1 also train or validate, e.g. {spk}"):
        cross_validate(config=None, manifest=leaky, folds=2, out=tmp_path / "y", model="tiny", overrides=FAST,
                       confirm=True, progress=False)


def test_cv_baseline_scores_egemaps_on_exactly_the_same_folds(tiny_manifest, tmp_path, capsys):
    """``cv --baseline``: the eGeMAPS baseline runs on the folds the recipe was tested on (and the
    same confirmation speakers), and the report, JSON and printout carry it beside the recipe and chance."""
    from emovox.cli import main

    out = tmp_path / "cv"
    assert main(["cv", "--manifest", str(tiny_manifest), "--folds", "2", "--out", str(out), "--model", "tiny",
                 "--confirm", "--baseline", *FAST]) in (0, None)
    cv = json.loads((out / "cv_metrics.json").read_text())
    base = json.loads((out / "egemaps" / "cv_metrics.json").read_text())
    assert [r["speakers"] for r in base["per_fold"]] == [r["speakers"] for r in cv["per_fold"]]
    assert base["confirmation"]["speakers"] == cv["confirmation"]["speakers"]
    beside = cv["beside"]["eGeMAPS + logistic regression"]
    assert beside["per_fold_uar"] == [r["uar"] for r in base["per_fold"]]
    assert beside["mean"]["uar"] == pytest.approx(base["mean"]["uar"])
    assert cv["chance_uar"] == pytest.approx(1 / 6)  # crema-d-6
    report = (out / "cv_report.md").read_text()
    assert "| eGeMAPS + logistic regression, same folds: mean ± std |" in report and "| chance |" in report
    printed = capsys.readouterr().out
    assert "eGeMAPS + logistic regression on the same folds: uar" in printed and "chance: uar 0.1667" in printed
