"""``emovox stress`` end to end on a tiny model: files, rows, determinism, the clean row agreeing
with ``evaluate``, and errors before the model loads."""
import json

import pandas as pd
import pytest

from emovox.cli import main
from emovox.evaluation.evaluate import evaluate
from emovox.evaluation.stress import stress

PICK = "white-0dB,babble-10dB,telephone,mp3-8k,gain-30dB"


@pytest.fixture(scope="module")
def report(tiny_run, tiny_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("stress")
    return out, stress(model=tiny_run, manifest=tiny_manifest, out=out, conditions=PICK, seed=3)


def test_writes_the_report_with_a_row_per_condition(report, tiny_manifest):
    out, r = report
    assert {"stress.json", "stress.csv", "stress.png", "report.md"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "stress.json").read_text())
    assert saved == json.loads(json.dumps(r))
    assert [c["name"] for c in r["conditions"]] == PICK.split(",")
    n = int((pd.read_csv(tiny_manifest)["split"] == "test").sum())
    assert r["clean"]["n"] == n
    for row in r["conditions"]:
        assert {"name", "family", "params", "uar", "accuracy", "macro_f1", "ece", "n", "uar_drop"} <= set(row)
        assert row["n"] == n and row["uar_drop"] == pytest.approx(r["clean"]["uar"] - row["uar"])
        lo, hi = row["uar_drop_ci"]
        assert lo <= row["uar_drop"] + 1e-9 and row["uar_drop"] <= hi + 1e-9
    mp3 = next(c for c in r["conditions"] if c["family"] == "mp3")
    assert 0 < mp3["params"]["measured_kbps"] < 16
    table = pd.read_csv(out / "stress.csv")
    assert list(table["name"]) == ["clean", *PICK.split(",")]
    text = (out / "report.md").read_text()
    assert all(name in text for name in PICK.split(",")) and "stress.png" in text


def test_clean_row_is_what_evaluate_reports(report, tiny_run, tiny_manifest, tmp_path):
    _, r = report
    m = evaluate(runs=[tiny_run], manifest=tiny_manifest, out=tmp_path / "e")
    assert r["clean"]["uar"] == pytest.approx(m["uar"]) and r["clean"]["accuracy"] == pytest.approx(m["accuracy"])


def test_a_subset_degrades_each_clip_as_the_full_run_does(report, tiny_run, tiny_manifest, tmp_path):
    _, r = report
    again = stress(model=tiny_run, manifest=tiny_manifest, out=tmp_path / "s", conditions="babble-10dB", seed=3)
    full = next(c for c in r["conditions"] if c["name"] == "babble-10dB")
    assert again["conditions"][0] == full


def test_cli_stress_and_its_errors(tiny_run, tiny_manifest, tmp_path, capsys):
    assert main(["stress", str(tiny_run), "--manifest", str(tiny_manifest), "--out", str(tmp_path / "c"),
                 "--conditions", "clip-10pct"]) == 0
    assert "clip-10pct" in capsys.readouterr().out and (tmp_path / "c" / "stress.png").is_file()
    assert main(["stress", str(tiny_run), "--manifest", str(tiny_manifest), "--out", str(tmp_path / "d"),
                 "--conditions", "white,hum"]) == 2
    assert "unknown stress condition 'hum'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_by_a_column_gives_each_group_under_each_condition(tiny_run, tiny_manifest, tmp_path):
    df = pd.read_csv(tiny_manifest, dtype=str, keep_default_na=False)
    speakers = sorted(df["speaker"].unique())
    df["gender"] = ["female" if speakers.index(s) % 2 else "male" for s in df["speaker"]]
    df.to_csv(tmp_path / "m.csv", index=False)
    r = stress(model=tiny_run, manifest=tmp_path / "m.csv", out=tmp_path / "s", split="train",
               conditions="telephone", by=["gender"])
    m = evaluate(runs=[tiny_run], manifest=tmp_path / "m.csv", out=tmp_path / "e", split="train", by=["gender"])
    clean = r["clean"]["groups"]["gender"]
    assert clean["uar"] == pytest.approx({g: v["uar"] for g, v in m["groups"]["gender"]["groups"].items()})
    assert clean["gap"] == pytest.approx(m["groups"]["gender"]["gap"]["uar"]["value"])
    assert set(r["conditions"][0]["groups"]["gender"]["uar"]) == {"female", "male"}
    assert "uar[gender=female]" in pd.read_csv(tmp_path / "s" / "stress.csv").columns
    assert "### UAR by gender" in (tmp_path / "s" / "report.md").read_text()
