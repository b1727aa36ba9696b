"""Per-group metrics against hand-computed ones; evaluate --by end to end with the card warning."""
import json

import numpy as np
import pandas as pd
import pytest

from emovox.cli import main
from emovox.errors import BadManifest
from emovox.evaluation.evaluate import evaluate
from emovox.evaluation.groups import MISSING, gap_warnings, group_metrics, group_values
from emovox.labels import get_scheme

SCHEME = get_scheme("pos,neg,neu")


def _probs(pred):
    return np.eye(3)[pred] * 0.7 + 0.1


def test_group_metrics_match_hand_computed_values():
    y = np.array([0, 0, 1, 2, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 2, 0, 0, 1, 1])
    g = ["f", "f", "f", "f", "m", "m", "m", "m"]
    res = group_metrics(y, _probs(pred), g, SCHEME)
    f, m = res["groups"]["f"], res["groups"]["m"]
    # f: class 0 recall 1/2, class 1 1/1, class 2 1/1 -> UAR 5/6; accuracy 3/4
    assert f["uar"] == pytest.approx(5 / 6) and f["accuracy"] == pytest.approx(0.75) and f["n"] == 4
    # m: class 0 1/1, class 1 1/2, class 2 0/1 -> UAR 1/2; accuracy 2/4
    assert m["uar"] == pytest.approx(0.5) and m["accuracy"] == pytest.approx(0.5)
    # macro-F1 of f over classes {0,1,2}: P0=1,R0=.5 -> 2/3; P1=.5,R1=1 -> 2/3; class 2 -> 1
    assert f["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # every top-1 confidence is 0.8: ECE = |accuracy - 0.8|
    assert f["ece"] == pytest.approx(0.05) and m["ece"] == pytest.approx(0.3)
    gap = res["gap"]["uar"]
    assert {k: gap[k] for k in ("value", "best", "worst")} == {"value": pytest.approx(1 / 3), "best": "f", "worst": "m"}
    assert gap["ci_unit"] == "clip" and gap["ci"][0] <= 1 / 3 <= gap["ci"][1]
    warnings = gap_warnings({"gender": res}, 0.05)
    assert len(warnings) == 1 and "0.333 across gender" in warnings[0] and "f 0.833 vs m 0.500" in warnings[0]
    assert gap_warnings({"gender": res}, 0.4) == []


def test_gap_interval_resamples_speakers_within_each_group():
    """Two women always right; of two men one always right, one always wrong. Drawing speakers,
    the men score 1, 0.5 or 0 (gap 0, 0.5 or 1): the interval spans 0 to 1. Drawing clips, the
    wrong man's share stays near half: a narrower interval around 0.5, which hides the speaker effect."""
    y = np.tile([0, 0, 1, 1, 2, 2], 4)
    speaker = np.repeat(["f1", "f2", "m1", "m2"], 6)
    pred = np.where(speaker == "m2", (y + 1) % 3, y)
    gender = [s[0] for s in speaker]
    by_speaker = group_metrics(y, _probs(pred), gender, SCHEME, clusters=speaker)["gap"]["uar"]
    assert by_speaker["value"] == pytest.approx(0.5) and by_speaker["ci_unit"] == "speaker"
    assert by_speaker["ci"] == [0.0, 1.0]
    by_clip = group_metrics(y, _probs(pred), gender, SCHEME)["gap"]["uar"]
    assert 0.1 < by_clip["ci"][0] < 0.5 < by_clip["ci"][1] < 0.9
    assert "95% CI +0.000 to +1.000, speakers resampled" in gap_warnings({"gender": {"groups": {
        "f": {"uar": 1.0}, "m": {"uar": 0.5}}, "gap": {"uar": by_speaker}}})[0]


def test_missing_values_are_listed_but_left_out_of_the_gap():
    df = pd.DataFrame({"gender": ["f", "", "m", "m"]})
    values = group_values(df, "gender")
    assert values == ["f", MISSING, "m", "m"]
    res = group_metrics(np.array([0, 1, 0, 0]), _probs(np.array([0, 0, 0, 1])), values, SCHEME)
    assert set(res["groups"]) == {"f", "m", MISSING} and {res["gap"]["uar"]["best"], res["gap"]["uar"]["worst"]} == {"f", "m"}
    assert group_metrics(np.array([0]), _probs(np.array([0])), ["f"], SCHEME)["gap"] == {}
    with pytest.raises(BadManifest, match="no column 'age'.*columns: gender"):
        group_values(df, "age", where="m.csv")
    with pytest.raises(BadManifest, match="'gender' is empty in every row"):
        group_values(pd.DataFrame({"gender": ["", ""]}), "gender")


@pytest.fixture(scope="module")
def grouped_manifest(tiny_manifest, tmp_path_factory):
    df = pd.read_csv(tiny_manifest, dtype=str, keep_default_na=False)
    speakers = sorted(df["speaker"].unique())
    df["gender"] = ["female" if speakers.index(s) % 2 else "male" for s in df["speaker"]]
    out = tmp_path_factory.mktemp("grouped") / "manifest.csv"
    df.to_csv(out, index=False)
    return out


def test_evaluate_by_gender_and_speaker_writes_groups_and_warns_on_the_card(tiny_run, grouped_manifest, tmp_path):
    m = evaluate(runs=[tiny_run], manifest=grouped_manifest, out=tmp_path / "e", by=["gender", "speaker"],
                 split="train", gap_warning=-1.0)  # the train split has speakers of both groups; any gap warns
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(saved["groups"]) == {"gender", "speaker"}
    df = pd.read_csv(grouped_manifest, dtype=str).query("split == 'train'")
    preds = pd.read_csv(tmp_path / "e" / "predictions.csv")
    for spk, stats in saved["groups"]["speaker"]["groups"].items():
        mine = preds[preds["speaker"].astype(str) == spk]
        assert stats["n"] == len(mine) and stats["accuracy"] == pytest.approx((mine["true"] == mine["predicted"]).mean())
    assert sum(g["n"] for g in saved["groups"]["gender"]["groups"].values()) == len(df)
    # a gender gap resamples speakers; a gap between speakers resamples their clips
    assert saved["groups"]["gender"]["gap"]["uar"]["ci_unit"] == "speaker"
    assert saved["groups"]["speaker"]["gap"]["uar"]["ci_unit"] == "clip"
    low, high = saved["groups"]["gender"]["gap"]["uar"]["ci"]
    assert low <= saved["groups"]["gender"]["gap"]["uar"]["value"] <= high
    assert len(m["group_warnings"]) == 2
    report = (tmp_path / "e" / "report.md").read_text()
    assert "### By gender" in report and "**Warning:**" in report and "speakers resampled within each group" in report
    card = (tiny_run / "README.md").read_text()
    assert "**Warning (train split):** UAR differs by" in card


def test_cli_by_a_missing_column_is_one_line(tiny_run, grouped_manifest, tmp_path, capsys):
    assert main(["evaluate", str(tiny_run), "--manifest", str(grouped_manifest), "--out", str(tmp_path / "x"),
                 "--by", "age"]) == 2
    err = capsys.readouterr().err
    assert "no column 'age' to group by" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
