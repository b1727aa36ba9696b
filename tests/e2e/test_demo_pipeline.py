"""The `make demo` path end to end, shortened: every stage runs and writes its files."""
import json

from emovox.demo_pipeline import run_demo


def test_demo_pipeline_runs_every_stage(tmp_path, capsys):
    m = run_demo(out=tmp_path / "demo", speakers=4, overrides=["training.max_steps=6", "training.eval_steps=3",
                                                               "data.max_seconds=1.0"])
    out = capsys.readouterr().out
    assert "Data report" in out and "Test UAR" in out and "majority baseline" in out
    saved = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    assert saved["uar"] == m["uar"] and saved["n"] > 0
    rows = [json.loads(line) for line in (tmp_path / "demo" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all("label" in r for r in rows)
    assert (tmp_path / "demo" / "prepared" / "class_balance.png").exists()
    assert "intensity is predictable from sentence" in (tmp_path / "demo" / "prepared" / "data_report.md").read_text()
