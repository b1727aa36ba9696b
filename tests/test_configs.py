"""Every file in configs/ trains as shipped, from the command line, offline (a few steps), and the
label scheme prepare decided travels with the manifest into training."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emovox.cli import main
from emovox.models.registry import REGISTRY, missing_packages, twin_of

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
FAST = ["training.max_steps=2", "training.eval_steps=1", "training.save_steps=1", "training.logging_steps=1",
        "training.per_device_train_batch_size=4", "training.head_max_iter=5", "data.max_seconds=1.0"]
RAVDESS_NAMES = {"ANG": "angry", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def stand_in(name: str) -> str | None:
    """The local model a test trains instead of a hub-only one (None: the name works as it is)."""
    if name in REGISTRY:
        return None  # registry names are used as they are
    twin = twin_of(name)
    if twin is not None:
        return None if not missing_packages(twin) else "whisper-tiny.en"  # twin installed: the fallback path
    return "tiny" if "/" in name else None


@pytest.fixture(scope="module")
def manifests(tiny_corpus, tmp_path_factory):
    """The tiny corpus prepared for each scheme a config may name."""
    from emovox.data.prepare import prepare

    out = tmp_path_factory.mktemp("cfg-manifests")
    made = {s: prepare(corpus="crema-d", root=tiny_corpus, out=out / s, scheme=s, workers=1).manifest
            for s in ("crema-d-21", "crema-d-6")}
    df = pd.read_csv(made["crema-d-6"], dtype=str, keep_default_na=False)
    df["label"] = df["emotion"] = df["label"].map(RAVDESS_NAMES)
    (out / "ravdess").mkdir()
    df.to_csv(out / "ravdess" / "manifest.csv", index=False)
    made["ravdess"] = out / "ravdess" / "manifest.csv"
    return made


def test_every_shipped_config_is_tested():
    assert {c.name for c in CONFIGS} >= {"demo.yaml", "crema-d-21.yaml", "ravdess-whisper.yaml", "whisper-probe.yaml"}


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_trains_from_the_command_line(config, manifests, tmp_path, capsys):
    cfg = yaml.safe_load(config.read_text())
    scheme = (cfg.get("data") or {}).get("scheme")
    manifest = manifests[scheme if scheme in manifests else "ravdess"]
    args = ["train", "--config", str(config), "--manifest", str(manifest), "--out", str(tmp_path / "run")]
    model = stand_in(cfg["model"]["name"])
    args += (["--model", model] if model else []) + FAST
    assert main(args) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "run" / "emovox.json").read_text())
    labels = set(pd.read_csv(manifest)["label"])
    assert labels <= set(meta["scheme"]["labels"])
    if scheme is None:  # the manifest's own labels, no empty classes
        assert set(meta["scheme"]["labels"]) == labels
    assert meta["model_source"] == (model or cfg["model"]["name"])
    assert main(["predict", str(tmp_path / "run"), str(pd.read_csv(manifest)["path"][0])]) == 0


def _csv_corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    rows = []
    for f in sorted(tiny_corpus.glob("*.wav")):
        speaker, _, emo, _ = f.stem.split("_")
        rows.append({"path": str(f), "speaker": speaker, "label": RAVDESS_NAMES[emo]})
    pd.DataFrame(rows).to_csv(tmp_path / "four.csv", index=False)
    return tmp_path / "four.csv"


def test_prepared_scheme_travels_into_training(tiny_corpus, tmp_path, capsys):
    csv = _csv_corpus(tiny_corpus, tmp_path)
    order = "sad,angry,neutral,happy"  # not sorted, not a built-in order: kept as given
    assert main(["prepare", "--corpus", "csv", "--root", str(csv), "--out", str(tmp_path / "p"),
                 "--scheme", order]) == 0
    manifest = tmp_path / "p" / "manifest.csv"
    assert json.loads((tmp_path / "p" / "manifest.scheme.json").read_text())["scheme"]["labels"] == order.split(",")
    assert order.replace(",", ", ") in (tmp_path / "p" / "data_report.md").read_text()
    # a config that names no scheme, and no config at all: exactly the four labels, in that order
    for name, extra in (("probe", ["--config", str(ROOT / "configs" / "whisper-probe.yaml")]), ("plain", [])):
        assert main(["train", *extra, "--manifest", str(manifest), "--out", str(tmp_path / name),
                     "--model", "tiny", *FAST]) == 0
        meta = json.loads((tmp_path / name / "emovox.json").read_text())
        assert meta["scheme"]["labels"] == order.split(",")
        assert json.loads((tmp_path / name / "config.json").read_text())["id2label"]["0"] == "sad"
        assert yaml.safe_load((tmp_path / name / "config.yaml").read_text())["data"]["scheme"] == order
    capsys.readouterr()
    # a config scheme the labels do not fit: one line naming them
    assert main(["train", "--manifest", str(manifest), "--out", str(tmp_path / "bad"), "--model", "tiny",
                 "data.scheme=crema-d-6", *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "angry, happy, neutral, sad" in err[0] and "crema-d-6" in err[0], err


def test_a_manifest_without_a_record_trains_on_exactly_its_labels(tiny_corpus, tmp_path):
    from emovox.training.train import train

    csv = _csv_corpus(tiny_corpus, tmp_path)
    assert main(["prepare", "--corpus", "csv", "--root", str(csv), "--out", str(tmp_path / "p")]) == 0
    (tmp_path / "p" / "manifest.scheme.json").unlink()  # as a manifest written by hand
    res = train(manifest=tmp_path / "p" / "manifest.csv", out=tmp_path / "run", model="tiny", overrides=FAST,
                progress=False)
    labels = json.loads((res.run_dir / "emovox.json").read_text())["scheme"]["labels"]
    assert labels == ["neutral", "happy", "sad", "angry"]  # RAVDESS's order, without its four absent classes


def test_shipped_configs_load_by_name_from_any_folder(tmp_path, monkeypatch):
    from emovox.config import load_config
    from emovox.errors import BadConfig

    monkeypatch.chdir(tmp_path)
    for spelling in ("demo", "demo.yaml", "configs/demo.yaml"):
        assert load_config(spelling).model.name == "whisper-tiny.en"
    with pytest.raises(BadConfig, match="shipped configs, usable by name from any folder: .*ravdess-whisper"):
        load_config("no-such-config.yaml")


def test_training_keys_are_checked_without_importing_transformers():
    """The installed TrainingArguments' fields, read from its source, are exactly its dataclass fields,
    and a mistyped key is refused in a process that never imports torch or transformers."""
    import dataclasses
    import subprocess
    import sys

    from transformers import TrainingArguments

    from emovox.config import _training_argument_names

    assert _training_argument_names() == {f.name for f in dataclasses.fields(TrainingArguments)}
    code = ("import sys\nfrom emovox.config import load_config\nfrom emovox.errors import BadConfig\n"
            "load_config(None, ['training.learning_rate=1e-4'])\n"
            "try:\n    load_config(None, ['training.lerning_rate=1e-4'])\nexcept BadConfig as e:\n    print(e)\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "unknown key training.lerning_rate" in out[0] and out[1] == "False False"
