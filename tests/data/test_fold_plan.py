"""Folds as published protocols give them (cv and baseline --fold-speakers / --fold-by)."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from emovox.data.fold_plan import resolve_folds
from emovox.data.manifest import load_manifest
from emovox.data.splits import fold_manifests, leaked_speakers
from emovox.errors import BadConfig, BadManifest


def _df(speakers=("01", "02", "03", "04", "05", "06"), per=2):
    rows = [{"path": f"{s}_{k}.wav", "speaker": s, "label": "angry" if k % 2 else "sad",
             "session": f"S{(i + 1) // 2}"} for i, s in enumerate(speakers, start=1) for k in range(per)]
    return pd.DataFrame(rows)


def test_inline_spec_matches_speakers_by_name_or_number():
    assert resolve_folds(_df(), fold_speakers="1,2;03 04;05,06") == [["01", "02"], ["03", "04"], ["05", "06"]]
    assert resolve_folds(_df()) == 5 and resolve_folds(_df(), folds=3) == 3


@pytest.mark.parametrize("name, text", [
    ("folds.json", json.dumps([["01", "02"], ["03"], [4, 5]])),
    ("folds.json", json.dumps({"a": ["01", "02"], "b": ["03"], "c": ["04", "05"]})),
    ("folds.csv", "speaker,fold\n01,a\n02,a\n03,b\n04,c\n05,c\n"),
    ("folds.txt", "01 02\n03\n\n04, 05\n"),
])
def test_fold_files(tmp_path, caplog, name, text):
    (tmp_path / name).write_text(text)
    with caplog.at_level(logging.INFO, logger="emovox"):
        assert resolve_folds(_df(), fold_speakers=tmp_path / name) == [["01", "02"], ["03"], ["04", "05"]]
    assert "speakers in no fold (they only ever train): 06" in caplog.text


def test_fold_by_a_column_is_one_fold_per_value():
    assert resolve_folds(_df(), fold_by="session") == [["01", "02"], ["03", "04"], ["05", "06"]]
    assert len(resolve_folds(_df(), fold_by="speaker")) == 6  # leave one speaker out


@pytest.mark.parametrize("kw, error, message", [
    (dict(fold_speakers="01,02;07"), BadManifest, "speaker '07' is not in the manifest"),
    (dict(fold_speakers="01,02;02,03"), BadManifest, "speaker 02 is in fold 1 and fold 2"),
    (dict(fold_speakers="01,02,03"), BadConfig, "at least 2 folds"),
    (dict(fold_speakers="01;02", folds=3), BadConfig, "--folds 3 but 2 folds are given"),
    (dict(fold_speakers="01;02", fold_by="session"), BadConfig, "one way"),
    (dict(fold_speakers="missing/folds.json"), BadConfig, "no such file"),
    (dict(fold_by="room"), BadManifest, "no such manifest column"),
    (dict(fold_by="label"), BadManifest, "speaker 01 has 2 values of label"),
    (dict(fold_speakers="01,02;05,06", held={"05"}), BadManifest, "--confirm keeps out of every fold"),
])
def test_bad_folds_say_what_is_wrong(kw, error, message):
    with pytest.raises(error, match=message):
        resolve_folds(_df(), **kw)


def test_given_folds_test_exactly_those_speakers(tiny_manifest):
    df = load_manifest(tiny_manifest)
    speakers = sorted(df["speaker"].astype(str).unique())
    groups = [speakers[:2], speakers[2:4], speakers[4:]]
    for fold, group in zip(fold_manifests(df, folds=groups), groups):
        assert sorted(fold.loc[fold["split"] == "test", "speaker"].astype(str).unique()) == group
        assert set(fold["split"]) == {"train", "validation", "test"} and not leaked_speakers(fold)


def test_baseline_and_cv_take_the_same_given_folds(tiny_manifest, tmp_path):
    from emovox.cli import main
    from emovox.training.cv import cross_validate

    speakers = sorted(load_manifest(tiny_manifest)["speaker"].astype(str).unique())
    spec = f"{speakers[0]},{speakers[1]};{speakers[2]},{speakers[3]};{speakers[4]},{speakers[5]}"
    assert main(["baseline", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "b"), "--fold-speakers", spec,
                 "--workers", "1"]) == 0
    base = json.loads((tmp_path / "b" / "cv_metrics.json").read_text())
    assert [r["speakers"] for r in base["per_fold"]] == [speakers[:2], speakers[2:4], speakers[4:]]
    assert base["fold_plan"] == "given" and base["folds"] == 3 and "(given folds)" in (tmp_path / "b" / "cv_report.md").read_text()
    fast = ["training.max_steps=1", "training.eval_steps=1", "training.logging_steps=1", "augment.enabled=false",
            "data.max_seconds=0.5"]
    res = cross_validate(manifest=tiny_manifest, out=tmp_path / "cv", model="tiny", fold_speakers=spec,
                         overrides=fast, progress=False)
    assert [r["speakers"] for r in res.per_fold] == [r["speakers"] for r in base["per_fold"]]


@pytest.mark.parametrize("name, speakers, size", [
    ("emobox-ravdess.txt", [f"{a:02d}" for a in range(1, 25)], 4),
    ("emobox-emovo.txt", ["f1", "f2", "f3", "m1", "m2", "m3"], 1),
])
def test_published_protocols_cover_their_corpus_once(name, speakers, size, caplog):
    corpus = name.split("-")[1].split(".")[0]
    with caplog.at_level(logging.INFO, logger="emovox"):
        groups = resolve_folds(_df(speakers).assign(corpus=corpus), fold_speakers="emobox")
    assert sorted(s for g in groups for s in g) == sorted(speakers) and {len(g) for g in groups} == {size}
    assert "in no fold" not in caplog.text


def test_a_protocol_needs_its_corpus_whole_and_by_name():
    first_fold = resolve_folds(_df([f"{a:02d}" for a in range(1, 25)]).assign(corpus="ravdess"), fold_speakers="emobox")[0]
    assert first_fold == ["01", "11", "20", "21"]  # EmoBox's fold 1 (data/folds/emobox-ravdess.txt)
    with pytest.raises(BadManifest, match="tests speakers this manifest lacks .*17, 18"):
        resolve_folds(_df([f"{a:02d}" for a in range(1, 17)]).assign(corpus="ravdess"), fold_speakers="emobox")
    with pytest.raises(BadConfig, match="folds for ravdess, emovo manifests .* corpus is crema-d"):
        resolve_folds(_df().assign(corpus="crema-d"), fold_speakers="emobox")


def test_cli_names_a_protocol_the_corpus_does_not_have(tiny_manifest, tmp_path, capsys):
    from emovox.cli import main

    assert main(["baseline", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "b"),
                 "--fold-speakers", "emobox"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folds for ravdess, emovo manifests" in err[0] and "crema-d" in err[0]
