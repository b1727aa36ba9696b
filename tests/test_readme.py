"""The README's Python examples run as written, in order, in a fresh folder."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 7, "the README's Python section lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, code in enumerate(blocks, start=1):
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)
    out = capsys.readouterr().out
    # each stage left what the README says it does
    assert (tmp_path / "py" / "prepared" / "manifest.csv").is_file()
    assert (tmp_path / "py" / "hf-prepared" / "manifest.csv").is_file()
    assert (tmp_path / "py" / "run" / "README.md").is_file() and (tmp_path / "py" / "eval" / "metrics.json").is_file()
    assert (tmp_path / "py" / "onnx" / "model.onnx").is_file() and (tmp_path / "py" / "cv" / "cv_metrics.json").is_file()
    assert "test UAR" in out and "eGeMAPS test UAR" in out
    assert namespace["hf"].rows == namespace["prep"].rows
    assert [r.metric_value for r in namespace["card"].data.eval_results if r.metric_type == "uar"] == \
        [round(namespace["metrics"]["uar"], 4)]


def test_import_emovox_is_light():
    import subprocess
    import sys

    code = "import sys, emovox; assert callable(emovox.prepare.__call__); print('torch' in sys.modules)"
    lazy = "import sys, emovox; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_public_api_is_keyword_only_and_documented():
    import inspect

    import emovox

    for name in ("prepare", "train", "evaluate", "predict", "baseline", "cv", "export", "search", "push",
                 "demo_data", "init_model", "pseudo_label"):
        fn = getattr(emovox, name)
        params = inspect.signature(fn).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name
        doc = inspect.getdoc(fn) or ""
        assert "Raises:" in doc, f"emovox.{name} does not say what it raises"
    assert inspect.getdoc(emovox.Predictor.from_run_dir)
    assert set(emovox.__all__) <= set(dir(emovox))


def bash_blocks(text: str) -> list[tuple[str | None, str]]:
    """Each ```bash block with what the line above it says it needs (None: runs offline as written)."""
    found = re.findall(r"^(?:<!-- needs: (.*?) -->\n)?```bash\n(.*?)^```", text, flags=re.S | re.M)
    return [(need or None, code) for need, code in found]


def test_readme_command_line_blocks_run_as_written_or_say_what_they_need(tmp_path):
    import json
    import os
    import subprocess
    import sys

    import pandas as pd

    blocks = bash_blocks(README.read_text())
    runnable = [code for need, code in blocks if need is None]
    assert len(blocks) >= 6 and len(runnable) == 1, [need for need, _ in blocks]
    (tmp_path / "configs").symlink_to(README.parent / "configs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", runnable[0]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    clips = sorted((tmp_path / "corpus").glob("*.wav"))
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == len(clips) > 0
    assert json.loads((tmp_path / "runs/demo/emovox.json").read_text())["model_source"] == "whisper-tiny.en"
    assert json.loads((tmp_path / "runs/demo/eval/metrics.json").read_text())["n"] > 0
    assert (tmp_path / "runs/demo-onnx/model.onnx").is_file() and (tmp_path / "cv/cv_metrics.json").is_file()
    assert (tmp_path / "hp/best.yaml").is_file() and "1001_DFA_ANG_XX.wav" in done.stdout
