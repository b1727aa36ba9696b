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
    assert gap == {"value": pytest.approx(1 / 3), "best": "f", "worst": "m"}
    warnings = gap_warnings({"gender": res}, 0.05)
    assert len(warnings) == 1 and "0.333 across gender" in warnings[0] and "f 0.833 vs m 0.500" in warnings[0]
    assert gap_warnings({"gender": res}, 0.4) == []


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
    assert len(m["group_warnings"]) == 2
    report = (tmp_path / "e" / "report.md").read_text()
    assert "### By gender" in report and "**Warning:**" in report
    card = (tiny_run / "README.md").read_text()
    assert "**Warning (train split):** UAR differs by" in card


def test_cli_by_a_missing_column_is_one_line(tiny_run, grouped_manifest, tmp_path, capsys):
    assert main(["evaluate", str(tiny_run), "--manifest", str(grouped_manifest), "--out", str(tmp_path / "x"),
                 "--by", "age"]) == 2
    err = capsys.readouterr().err
    assert "no column 'age' to group by" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
