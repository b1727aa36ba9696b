"""Training: the 2-step smoke test of the run dir, learning, resume after SIGKILL, config overrides."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from emovox.config import load_config
from emovox.errors import BadConfig, BadRunDir
from emovox.rundir import RunDir, read_meta
from emovox.training.train import class_weights, train

from conftest import TINY_TRAIN


def test_run_dir_has_everything(tiny_run):
    run = RunDir(tiny_run)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "emovox.json", "config.yaml",
                 "train_log.jsonl", "curves.png", "curves.csv", "train_metrics.json"):
        assert (tiny_run / name).exists(), name
    meta = read_meta(run)
    assert meta["scheme"]["name"] == "crema-d-6" and meta["seed"] == 0 and 0.05 <= meta["temperature"] <= 20
    assert len(meta["manifest_fingerprint"]) == 16 and meta["environment"]["torch"]
    assert meta["config"]["training"]["max_steps"] == 12
    logs = [json.loads(line) for line in run.log.read_text().splitlines()]
    assert any("loss" in r for r in logs) and any("eval_uar" in r for r in logs)
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["id2label"]["0"] == "ANG" and len(cfg["id2label"]) == 6
    assert any(p.name.startswith("events") for p in run.tensorboard.rglob("*"))


def test_training_loss_falls(tiny_run):
    losses = [json.loads(r)["loss"] for r in RunDir(tiny_run).log.read_text().splitlines() if '"loss"' in r]
    assert len(losses) >= 4
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2


def test_overrides_and_unknown_keys(tmp_path):
    cfg = load_config(None, ["training.max_steps=20", "model.hidden_dropout=0.2", "augment.enabled=false"])
    assert cfg.training["max_steps"] == 20 and cfg.model.hidden_dropout == 0.2 and not cfg.augment.enabled
    with pytest.raises(BadConfig, match="training.max_stepz"):
        load_config(None, ["training.max_stepz=3"])
    with pytest.raises(BadConfig, match="data.nope"):
        load_config(None, ["data.nope=1"])
    with pytest.raises(BadConfig, match="section.key=value"):
        load_config(None, ["max_steps=3"])


def test_refuses_to_overwrite_checkpoints(tiny_run, tiny_manifest):
    with pytest.raises(BadRunDir, match="--resume"):
        train(manifest=tiny_manifest, out=tiny_run, model="tiny", overrides=TINY_TRAIN, progress=False)


def test_frozen_feature_encoder_gets_no_gradient(tiny_manifest, tmp_path):
    from emovox.config import ModelConfig
    from emovox.models.loading import load_model
    from emovox.labels import get_scheme

    model, _ = load_model("tiny", get_scheme("crema-d-6"), ModelConfig(freeze_feature_encoder=True))
    out = model(torch.randn(2, 8000), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert all(p.grad is None for p in model.wav2vec2.feature_extractor.parameters())
    assert model.classifier.weight.grad is not None


def test_class_weights_inverse_frequency():
    w = class_weights([0, 0, 0, 1], 3)
    assert w[0] == pytest.approx(4 / 6) and w[1] == pytest.approx(2.0) and w[2] == 0


def _train_cmd(manifest, out, *extra):
    return [sys.executable, "-m", "emovox.cli", "train", "--manifest", str(manifest), "--out", str(out),
            "--model", "tiny", *TINY_TRAIN, "training.max_steps=24", "training.eval_steps=4",
            "training.save_total_limit=10", "augment.enabled=true", *extra]


def test_resume_after_sigkill_matches_uninterrupted(tiny_manifest, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    full = tmp_path / "full"
    r = subprocess.run(_train_cmd(tiny_manifest, full), capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(tiny_manifest, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "checkpoint-8" / "trainer_state.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "emovox.json").exists(), "the run finished before it could be killed"
    r = subprocess.run(_train_cmd(tiny_manifest, killed, "--resume"), capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a = json.loads((full / "train_metrics.json").read_text())
    b = json.loads((killed / "train_metrics.json").read_text())
    for key in ("eval_loss", "eval_accuracy", "eval_uar"):
        assert a[key] == pytest.approx(b[key], abs=1e-5), key
    from safetensors.torch import load_file

    wa, wb = load_file(full / "model.safetensors"), load_file(killed / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_reference_recipe_config_runs_unchanged_with_a_local_model_dir(tiny_corpus, tmp_path):
    """configs/crema-d-21.yaml as shipped, pointed at a local model directory (as a hub model loads)."""
    from pathlib import Path

    from emovox.labels import get_scheme
    from emovox.models.presets import init_model
    from emovox.data.prepare import prepare

    repo = Path(__file__).resolve().parents[2]
    manifest = prepare(corpus="crema-d", root=tiny_corpus, out=tmp_path / "p", workers=1).manifest
    model_dir = init_model(size="tiny", scheme=get_scheme("crema-d-21"), out=tmp_path / "local-model")
    res = train(config=repo / "configs" / "crema-d-21.yaml", manifest=manifest, out=tmp_path / "run",
                model=str(model_dir), overrides=["training.max_steps=2"], progress=False)
    meta = read_meta(RunDir(res.run_dir))
    assert meta["scheme"]["name"] == "crema-d-21" and meta["model_source"] == str(model_dir)
    cfg = meta["config"]
    assert cfg["training"]["learning_rate"] == 1e-5 and cfg["training"]["per_device_train_batch_size"] == 4
    assert cfg["augment"]["enabled"] and cfg["data"]["max_seconds"] == 5.0


def test_clips_are_prefetched_with_augmentation_but_not_with_loader_workers():
    from emovox.data.augment import build_augment
    from emovox.training.train import prefetch_depth

    quiet = load_config(None, ["augment.enabled=false"])
    assert prefetch_depth(quiet, build_augment(quiet.augment)) == quiet.data.prefetch > 0
    noisy = load_config(None, ["augment.enabled=true"])  # the augmenter draws from no global RNG
    assert prefetch_depth(noisy, build_augment(noisy.augment)) == noisy.data.prefetch
    workers = load_config(None, ["augment.enabled=false", "training.dataloader_num_workers=1"])
    assert prefetch_depth(workers, None) == 0


def test_bf16_and_loader_workers_auto_follow_the_machine(monkeypatch):
    """``auto`` means bf16 autocast and loader workers on a CUDA machine, fp32 and the prefetch
    thread on a CPU; bad values are refused in one line naming the key."""
    from emovox.training.train import loader_workers, prefetch_depth, use_bf16

    auto = load_config(None, ["training.bf16=auto", "training.dataloader_num_workers=auto"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert use_bf16(auto.training) is False and loader_workers(auto.training) == 0
    assert prefetch_depth(auto) == auto.data.prefetch > 0  # the CPU keeps its prefetch thread
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert use_bf16(auto.training) is True and loader_workers(auto.training) == 4
    assert prefetch_depth(auto) == 0  # workers prefetch themselves
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert loader_workers(auto.training) == 1
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert use_bf16(auto.training) is False  # an older GPU: fp32
    assert use_bf16({}) is False and use_bf16({"bf16": True}) is True and loader_workers({}) == 0
    for bad in ({"bf16": "yes"}, {"dataloader_num_workers": "many"}, {"dataloader_num_workers": -1}):
        with pytest.raises(BadConfig, match="training.(bf16|dataloader_num_workers)"):
            use_bf16(bad) if "bf16" in bad else loader_workers(bad)


def test_a_bare_no_strategy_means_no_not_false():
    """YAML (and a ``key=value`` override) reads ``no`` as false; transformers wants the string."""
    from emovox.training.train import trainer_kwargs

    cfg = load_config(None, ["training.eval_strategy=no", "training.logging_strategy=no"])
    assert cfg.training["eval_strategy"] == "no" and cfg.training["logging_strategy"] == "no"  # every reader sees it
    kwargs = trainer_kwargs(cfg.training)
    assert kwargs["eval_strategy"] == "no" and kwargs["logging_strategy"] == "no"
    assert trainer_kwargs({"eval_strategy": "epoch"})["eval_strategy"] == "epoch"


def test_the_end_of_a_run_reuses_the_best_evaluation(tiny_manifest, tmp_path, monkeypatch):
    """No second pass over the validation split: the best step's evaluation (logits kept) gives the
    saved metrics and the temperature, and they equal a fresh pass over the saved model."""
    import numpy as np
    from transformers import Trainer

    from conftest import TINY_TRAIN
    from emovox.evaluation.metrics import fit_temperature
    from emovox.training.train import final_validation

    passes: list[str] = []
    real_predict, real_evaluate = Trainer.predict, Trainer.evaluate
    monkeypatch.setattr(Trainer, "predict", lambda self, *a, **k: passes.append("predict") or real_predict(self, *a, **k))
    monkeypatch.setattr(Trainer, "evaluate", lambda self, *a, **k: passes.append("evaluate") or real_evaluate(self, *a, **k))
    captured = {}
    import emovox.training.train as emt

    def spy(trainer, dataset, kept=None):
        captured.update(trainer=trainer, fresh=real_predict(trainer, dataset, metric_key_prefix="eval"))
        passes.clear()
        return final_validation(trainer, dataset, kept)

    monkeypatch.setattr(emt, "final_validation", spy)
    res = train(manifest=tiny_manifest, out=tmp_path / "run", model="tiny", overrides=TINY_TRAIN, progress=False)
    assert passes == [], f"the end of the run scored the validation split again: {passes}"
    assert sum(1 for e in captured["trainer"].state.log_history if "eval_loss" in e) == 2  # steps 6 and 12
    fresh = captured["fresh"]  # a pass over the best model, before saving folds the temperature in
    assert res.metrics["eval_loss"] == pytest.approx(fresh.metrics["eval_loss"], abs=1e-6)
    assert res.metrics["eval_uar"] == pytest.approx(fresh.metrics["eval_uar"])
    assert res.metrics["temperature"] == round(float(fit_temperature(np.asarray(fresh.predictions),
                                                                     np.asarray(fresh.label_ids))), 4)
