"""The accuracy-coverage curve, AURC and the threshold for a target accuracy on known scores;
evaluate writes them."""
import json

import pandas as pd
import pytest

from emovox.errors import BadConfig
from emovox.evaluation.abstention import aurc, coverage_curve, threshold_for_accuracy
from emovox.evaluation.evaluate import evaluate

CONF = [0.9, 0.8, 0.8, 0.6, 0.5]
HIT = [True, True, False, True, False]


def test_curve_points_group_ties():
    pts = coverage_curve(CONF, HIT)
    assert [(p["threshold"], p["n"]) for p in pts] == [(0.9, 1), (0.8, 3), (0.6, 4), (0.5, 5)]
    assert [p["coverage"] for p in pts] == [0.2, 0.6, 0.8, 1.0]
    assert [p["accuracy"] for p in pts] == pytest.approx([1.0, 2 / 3, 3 / 4, 3 / 5])


def test_aurc_by_hand():
    a = aurc(CONF, HIT)
    # per clip, the risk of its tie group: 0, 1/3, 1/3, 1/4, 2/5
    assert a["aurc"] == pytest.approx((0 + 1 / 3 + 1 / 3 + 1 / 4 + 2 / 5) / 5)
    # oracle: 3 right first, then 2 wrong: risks 0, 0, 0, 1/4, 2/5
    assert a["optimal"] == pytest.approx((1 / 4 + 2 / 5) / 5)
    assert a["excess"] == pytest.approx(a["aurc"] - a["optimal"])
    assert aurc([0.9, 0.1], [True, True])["aurc"] == 0.0


def test_threshold_for_target_accuracy():
    t = threshold_for_accuracy(CONF, HIT, 0.75)
    assert t == {"target_accuracy": 0.75, "min_confidence": 0.6, "coverage": 0.8, "accuracy": 0.75}
    assert threshold_for_accuracy(CONF, HIT, 0.9)["min_confidence"] == 0.9
    assert threshold_for_accuracy(CONF, HIT, 0.5)["coverage"] == 1.0
    assert threshold_for_accuracy([0.7, 0.6], [False, False], 0.5)["min_confidence"] is None
    with pytest.raises(BadConfig, match="target-accuracy must be in"):
        threshold_for_accuracy(CONF, HIT, 1.5)


def test_evaluate_writes_the_curve_and_the_threshold(tiny_run, tiny_manifest, tmp_path):
    m = evaluate(runs=[tiny_run], manifest=tiny_manifest, out=tmp_path / "e", split="validation", target_accuracy=0.5,
                 all_labels=True)  # scored over every label, as predict scores: the curve ends at the accuracy
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert saved["aurc"] == pytest.approx(m["abstention"]["aurc"]) and saved["abstention"]["target"]["target_accuracy"] == 0.5
    curve = pd.read_csv(tmp_path / "e" / "coverage.csv")
    assert curve["n"].iloc[-1] == m["n"] and curve["coverage"].iloc[-1] == 1.0
    assert curve["accuracy"].iloc[-1] == pytest.approx(m["accuracy"])
    assert (tmp_path / "e" / "coverage.png").is_file()
    assert "Abstaining when unsure" in (tmp_path / "e" / "report.md").read_text()
