"""predict/serve --min-confidence: rows under the threshold keep their scores, lose their label and
say so; the exit code only counts files that could not be scored."""
import json

import pandas as pd
import pytest

from emovox.cli import main
from emovox.errors import BadConfig
from emovox.evaluation.evaluate import evaluate
from emovox.inference.abstain import mark
from emovox.inference.predict import Predictor, predict
from emovox.inference.serve_io import ServeSettings, score_files
from emovox.testing import make_broken_files


def test_mark_rows():
    row = {"path": "a.wav", "label": "ANG", "score": 0.4, "top_k": [{"label": "ANG", "score": 0.4}]}
    assert mark(row, 0.5) == {**row, "label": None, "abstained": True}
    assert mark(row, 0.4) == {**row, "abstained": False}
    assert mark(row, None) is row
    assert mark({"path": "b.wav", "error": "empty"}, 0.5) == {"path": "b.wav", "error": "empty"}


def test_the_validation_threshold_reaches_the_target_when_predict_applies_it(tiny_run, tiny_manifest, tmp_path):
    m = evaluate(runs=[tiny_run], manifest=tiny_manifest, out=tmp_path / "e", split="validation", target_accuracy=0.5)
    t = m["abstention"]["target"]
    val = pd.read_csv(tiny_manifest).query("split == 'validation'")
    p = t["min_confidence"] if t["min_confidence"] is not None else 0.0
    rows = list(predict(runs=[tiny_run], inputs=list(val["path"]), min_confidence=p))
    truth = dict(zip(val["path"], val["label"]))
    answered = [r for r in rows if not r["abstained"]]
    assert all(r["label"] is None and r["top_k"] for r in rows if r["abstained"])
    assert len(answered) / len(rows) == pytest.approx(t["coverage"] if t["min_confidence"] is not None else 1.0)
    if t["min_confidence"] is not None:
        assert sum(r["label"] == truth[r["path"]] for r in answered) / len(answered) >= 0.5


def test_cli_predict_min_confidence_keeps_the_exit_code(tiny_run, tiny_manifest, tmp_path, capsys):
    clips = list(pd.read_csv(tiny_manifest)["path"][:3])
    assert main(["predict", str(tiny_run), *clips, "--min-confidence", "1.0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(r["label"] is None and r["abstained"] and r["score"] > 0 for r in rows)
    bad = make_broken_files(tmp_path / "bad")["text"]
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), clips[0], str(bad), "--min-confidence", "0", "--format", "csv",
                 "--out", str(out)]) == 1
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table["abstained"]) == ["False", ""] and table["label"].iloc[0] and table["error"].iloc[1]
    assert main(["predict", str(tiny_run), clips[0], "--min-confidence", "1.5"]) == 2
    assert "--min-confidence must be between 0 and 1" in capsys.readouterr().err


def test_serve_applies_the_same_threshold(tiny_run, tiny_manifest):
    predictor = Predictor.from_run_dir(tiny_run)
    clip = pd.read_csv(tiny_manifest)["path"][0]
    rows = score_files(predictor, [("a.wav", clip)], settings=ServeSettings(min_confidence=1.0).check(), top_k=2)
    assert rows[0]["label"] is None and rows[0]["abstained"] is True and len(rows[0]["top_k"]) == 2
    rows = score_files(predictor, [("a.wav", clip)], settings=ServeSettings().check(), top_k=2)
    assert rows[0]["label"] and "abstained" not in rows[0]
    with pytest.raises(BadConfig, match="min-confidence"):
        ServeSettings(min_confidence=-0.1).check()
