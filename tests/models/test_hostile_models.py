"""Hostile model folders: pickled weights that run code, custom code (auto_map), malformed or
contradicting configs. Each is refused in one line (exit 2) by predict, evaluate, export and
serve, and nothing from the folder runs."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from emovox.cli import main
from emovox.errors import BadRunDir
from emovox.models.presets import init_model
from emovox.labels import get_scheme
from emovox.testing import write_tone


class _RunsCode:
    """Unpickling this creates the marker file: what a malicious pytorch_model.bin does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return init_model(size="tiny", scheme=get_scheme("calm,tense"), out=tmp_path_factory.mktemp("m") / "tiny", seed=0)


@pytest.fixture()
def clip(tmp_path) -> Path:
    return write_tone(tmp_path / "clip.wav", 0.5)


def _copy(src: Path, dest: Path, *, weights: bool = True) -> Path:
    shutil.copytree(src, dest)
    if not weights:
        (dest / "model.safetensors").unlink()
    return dest


def _one_error_line(capsys, argv: list[str], match: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2, err
    assert len(lines) == 1 and match in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def test_pickled_weights_that_run_code_are_refused_and_run_nothing(tiny_model, tmp_path, clip, capsys):
    bad = _copy(tiny_model, tmp_path / "evil", weights=False)
    marker = tmp_path / "PWNED"
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _RunsCode(marker)}))
    _one_error_line(capsys, ["predict", str(bad), str(clip)], "pickle")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label,split\n{clip},calm,test\n")
    _one_error_line(capsys, ["evaluate", str(bad), "--manifest", str(manifest), "--out", str(tmp_path / "e")], "pickle")
    _one_error_line(capsys, ["export", str(bad), "--out", str(tmp_path / "x")], "pickle")
    from emovox.inference.serve import serve

    with pytest.raises(BadRunDir, match="pickle"):
        serve(models=[str(bad)], port=0)
    # even with --allow-pickle, torch's weights-only unpickler refuses the payload: one line, no code run
    rc = main(["predict", str(bad), str(clip), "--allow-pickle"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "cannot load the weights" in err, err
    assert not marker.exists()


def test_allow_pickle_loads_a_plain_state_dict(tiny_model, tmp_path, clip, capsys):
    import torch
    from safetensors.torch import load_file

    legacy = _copy(tiny_model, tmp_path / "legacy", weights=False)
    torch.save(load_file(str(tiny_model / "model.safetensors")), legacy / "pytorch_model.bin")
    _one_error_line(capsys, ["predict", str(legacy), str(clip)], "--allow-pickle")
    assert main(["predict", str(legacy), str(clip), "--allow-pickle", "--out", str(tmp_path / "p.jsonl")]) == 0
    ours = main(["predict", str(tiny_model), str(clip), "--out", str(tmp_path / "q.jsonl")])
    assert ours == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("p.jsonl", "q.jsonl"))
    assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_auto_map_is_refused_and_its_code_never_imported(tiny_model, tmp_path, clip, capsys):
    bad = _copy(tiny_model, tmp_path / "remote")
    marker = tmp_path / "IMPORTED"
    (bad / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w')\n")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig",
                       "AutoModelForAudioClassification": "modeling_evil.Evil"}
    (bad / "config.json").write_text(json.dumps(cfg))
    line = _one_error_line(capsys, ["predict", str(bad), str(clip)], "auto_map")
    assert "trust_remote_code" in line
    _one_error_line(capsys, ["export", str(bad), "--out", str(tmp_path / "x")], "auto_map")
    assert not marker.exists()


@pytest.mark.parametrize("broken,match", [
    ("{not json", "cannot read the model config"),
    ("[1, 2, 3]", "not a JSON object"),
    ('{"model_type": "wav2vec2", "id2label": {"zero": "a", "one": "b"}}', "non-integer ids"),
    ('{"model_type": "no-such-type"}', "cannot read the model config"),
])
def test_malformed_config_json_is_one_line(tiny_model, tmp_path, clip, capsys, broken, match):
    bad = _copy(tiny_model, tmp_path / "bad")
    (bad / "config.json").write_text(broken)
    _one_error_line(capsys, ["predict", str(bad), str(clip)], match)


def test_label_count_disagreeing_with_the_weights_is_refused(tiny_model, tmp_path, clip, capsys):
    bad = _copy(tiny_model, tmp_path / "three")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["id2label"] = {"0": "a", "1": "b", "2": "c"}
    cfg["label2id"] = {"a": 0, "b": 1, "c": 2}
    (bad / "config.json").write_text(json.dumps(cfg))
    line = _one_error_line(capsys, ["predict", str(bad), str(clip)], "weights do not fit config.json")
    assert "3 labels" in line and "2" in line


@pytest.mark.parametrize("meta,match", [
    ("{oops", "not valid JSON"),
    ('{"scheme": {"name": "x", "labels": ["calm", "tense", "other"]}}', "3 labels but config.json has 2"),
    ('{"scheme": {"name": "x", "labels": "calm"}}', "malformed scheme"),
    ('{"scheme": {"name": "x", "labels": ["calm", "tense"]}, "temperature": "hot"}', "temperature"),
    ('{"scheme": {"name": "x", "labels": ["calm", "tense"]}, "max_seconds": -1}', "max_seconds"),
])
def test_malformed_emovox_json_is_one_line(tiny_model, tmp_path, clip, capsys, meta, match):
    bad = _copy(tiny_model, tmp_path / "run")
    (bad / "emovox.json").write_text(meta)
    _one_error_line(capsys, ["predict", str(bad), str(clip)], match)
