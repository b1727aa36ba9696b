"""The run dir's model card (README.md) and ``emovox push`` up to the upload call."""
from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub import HfApi, ModelCard

from emovox.cli import main
from emovox.errors import BadConfig, BadRunDir, HubError
from emovox.hub import files_to_upload, push
from emovox.modelcard import hub_id, load_card, write_model_card
from emovox.rundir import RunDir, update_meta

STEPS = ["training.max_steps=4", "training.eval_steps=2", "training.logging_steps=2",
         "training.per_device_train_batch_size=4", "training.learning_rate=1e-3", "training.warmup_ratio=0.0",
         "augment.enabled=false", "data.max_seconds=1.0"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A 4-step tiny run on the synthetic CREMA-D-shaped corpus (intensities only in sentence IEO)."""
    from emovox.data.prepare import prepare
    from emovox.data.synthetic import make_demo_corpus
    from emovox.training.train import train

    root = tmp_path_factory.mktemp("card")
    make_demo_corpus(out=root / "corpus", speakers=5, sentences=("DFA", "IEO", "TIE"), workers=1)
    prep = prepare(corpus="crema-d", root=root / "corpus", out=root / "prepared", workers=1)
    train(manifest=prep.manifest, out=root / "run", model="tiny", overrides=STEPS, progress=False)
    return root / "run", prep.manifest


def test_the_card_is_written_with_the_run_and_carries_the_data_warnings(demo_run):
    run, _ = demo_run
    card = ModelCard.load(run / "README.md")  # huggingface_hub parses it (metadata errors raise)
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "audio-classification" and data["library_name"] == "transformers"
    assert {"emovox", "speech-emotion-recognition", "wav2vec2"} <= set(data["tags"])
    assert "base_model" not in data  # "tiny" is a size preset, not a hub id
    assert "model-index" not in data  # nothing evaluated yet
    text = card.text
    assert "| 16 | NEU_XX |" in text and "Not evaluated on a test split yet" in text
    assert "intensity is predictable from sentence" in text  # the data report's CREMA-D confound
    assert "Speaker-independent protocol" in text
    assert 'pipeline("audio-classification", model="REPO_ID_OR_RUN_DIR")' in text and "emovox predict" in text
    load_card(run)


def test_evaluate_puts_the_test_metrics_into_the_model_index(demo_run, tmp_path):
    from emovox.evaluation.evaluate import evaluate

    run, manifest = demo_run
    m = evaluate(runs=[run], manifest=manifest, out=tmp_path / "eval", split="test")
    card = load_card(run)
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results["uar"].metric_value == pytest.approx(m["uar"], abs=1e-4)
    assert results["accuracy"].metric_value == pytest.approx(m["accuracy"], abs=1e-4)
    assert results["f1"].metric_value == pytest.approx(m["macro_f1"], abs=1e-4)
    assert results["f1"].metric_args == {"average": "macro"}
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert {r.dataset_name for r in card.data.eval_results} == {"CREMA-D"}
    assert f"| test | {m['n']} | {m['accuracy']:.4f} | {m['uar']:.4f} |" in card.text
    # an ensemble's numbers are not one run's: the card keeps the single-run results
    evaluate(runs=[run, run], manifest=manifest, out=tmp_path / "ens", split="validation")
    assert {r.dataset_split for r in load_card(run).data.eval_results} == {"test"}


def test_a_hub_base_model_and_bad_metadata(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run[0], run)
    update_meta(RunDir(run), model_source="facebook/wav2vec2-base")
    write_model_card(run)
    assert load_card(run).data.base_model == "facebook/wav2vec2-base"
    assert hub_id("tiny") is None and hub_id(str(run)) is None and hub_id("a/b/c") is None
    text = (run / "README.md").read_text().replace("pipeline_tag: audio-classification", "pipeline_tag: image-to-text")
    (run / "README.md").write_text(text)
    with pytest.raises(BadRunDir, match="does not validate"):
        load_card(run)


def test_push_sends_the_run_without_checkpoints_and_names_the_repo_in_the_card(demo_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(demo_run[0], run)
    (run / "checkpoint-4").mkdir(exist_ok=True)
    (run / "checkpoint-4" / "optimizer.pt").write_bytes(b"x")
    calls = []

    def create_repo(self, **kw):
        calls.append(("create_repo", kw))

    def upload_folder(self, **kw):
        card = ModelCard.load(f"{kw['folder_path']}/README.md")  # the card as it is sent
        calls.append(("upload_folder", kw, card))
        return "https://huggingface.co/me/ser-model/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = push(run=run, repo_id="me/ser-model", private=True, datasets=["me/my-corpus"])
    assert url.endswith("/commit/abc")
    assert calls[0] == ("create_repo", {"repo_id": "me/ser-model", "repo_type": "model", "private": True,
                                        "exist_ok": True})
    _, kw, card = calls[1]
    assert kw["repo_id"] == "me/ser-model" and kw["folder_path"] == str(run)
    assert 'pipeline("audio-classification", model="me/ser-model")' in card.text
    assert card.data.datasets == ["me/my-corpus"]
    sent = files_to_upload(run)
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json", "emovox.json"} <= set(sent)
    assert not [f for f in sent if f.startswith("checkpoint-")]
    assert json.loads((run / "emovox.json").read_text())["hub_repo"] == "me/ser-model"
    with pytest.raises(BadConfig, match="not a hub repo id"):
        push(run=run, repo_id="no slash allowed here!")


def test_push_without_a_hub_is_one_line(demo_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run"
    shutil.copytree(demo_run[0], run)

    def offline(self, **kw):
        raise ConnectionError("Failed to resolve 'huggingface.co'\nmore lines")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    with pytest.raises(HubError, match="push to me/x failed"):
        push(run=run, repo_id="me/x")
    assert main(["push", str(run), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: push to me/x failed (ConnectionError")
