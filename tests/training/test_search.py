"""Hyperparameter search: space parsing, the pruning callback, and a 3-trial study end to end."""
from pathlib import Path

import pandas as pd
import pytest

from emovox.config import load_config
from emovox.errors import BadConfig
from emovox.training.search import (PruningCallback, _study, default_space, load_space, parse_space, search,
                           strength_overrides)

FAST = ["training.max_steps=2", "training.eval_steps=2", "training.logging_steps=1",
        "training.per_device_eval_batch_size=16", "training.warmup_ratio=0.0", "data.max_seconds=0.5"]


class FakeTrial:
    def __init__(self, prune: bool):
        self.prune, self.reports = prune, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune


class State:
    global_step = 6


def test_pruning_callback_raises_when_told_to():
    import optuna

    keep = FakeTrial(prune=False)
    cb = PruningCallback(keep)
    cb.on_evaluate(None, State(), None, metrics={"eval_uar": 0.4, "eval_loss": 1.0})
    cb.on_evaluate(None, State(), None, metrics={"eval_uar": 0.5})  # same step again: not re-reported
    assert keep.reports == [(6, 0.4)]
    with pytest.raises(optuna.TrialPruned):
        PruningCallback(FakeTrial(prune=True)).on_evaluate(None, State(), None, metrics={"eval_uar": 0.1})


def test_space_parsing(tmp_path):
    space = parse_space({"training.learning_rate": {"log": [1e-5, 1e-3]}, "model.pooling": {"choice": ["mean"]}})
    assert space["training.learning_rate"].kind == "log"
    for bad in ({"log": [0, 1]}, {"float": [1, 0]}, {"uniform": [0, 1]}, 0.1):
        with pytest.raises(BadConfig, match="x.y"):
            parse_space({"x.y": bad})
    (tmp_path / "s.yaml").write_text("training.per_device_train_batch_size: {choice: [4, 8]}\n")
    assert load_space(tmp_path / "s.yaml")["training.per_device_train_batch_size"].args == (4, 8)
    tiny = default_space(load_config(None, ["model.name=tiny"]))
    assert {"training.learning_rate", "training.per_device_train_batch_size", "augment.strength",
            "model.hidden_dropout", "model.final_dropout"} <= set(tiny)
    if "model.freeze_layers" in tiny:  # present once ModelConfig has the key
        assert tiny["model.freeze_layers"].args == (0, 1)  # the tiny preset has 2 layers


def test_strength_scales_the_configured_augmentation():
    base = load_config(None)
    cfg = load_config(None, strength_overrides(base, 0.5))
    assert cfg.augment.pitch_semitones == pytest.approx(base.augment.pitch_semitones / 2)
    assert cfg.augment.noise_max_amplitude == pytest.approx(base.augment.noise_max_amplitude / 2)
    assert 1 - cfg.augment.stretch_min_rate == pytest.approx((1 - base.augment.stretch_min_rate) / 2)
    assert cfg.augment.stretch_max_rate - 1 == pytest.approx((base.augment.stretch_max_rate - 1) / 2)


def test_bad_space_key_fails_before_training(tiny_manifest, tmp_path):
    with pytest.raises(BadConfig, match="model.nope"):
        search(config=None, manifest=tiny_manifest, trials=1, out=tmp_path, model="tiny",
               space=parse_space({"model.nope": {"float": [0, 1]}}), progress=False)


class PruneTrialOne:
    """Prunes trial 1 at its first report, nothing else."""

    def prune(self, study, trial):
        return trial.number == 1


def test_three_trials_best_yaml_and_pruning(tiny_manifest, tmp_path):
    import optuna

    pruner = type("P", (PruneTrialOne, optuna.pruners.BasePruner), {})()
    space = parse_space({"training.learning_rate": {"log": [1e-4, 1e-2]},
                         "model.hidden_dropout": {"float": [0.0, 0.2]},
                         "training.per_device_train_batch_size": {"choice": [4, 8]}})
    res = search(config=None, manifest=tiny_manifest, trials=3, out=tmp_path, model="tiny", overrides=FAST,
                 space=space, pruner=pruner, progress=False)
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert list(trials.columns[:3]) == ["number", "state", "value"] and len(trials) == 3
    assert trials["state"].tolist() == ["COMPLETE", "PRUNED", "COMPLETE"] and res.states == {"COMPLETE": 2, "PRUNED": 1}
    best_row = trials.loc[trials["value"].idxmax()]
    assert res.best_value == pytest.approx(best_row["value"])
    cfg = load_config(res.best_config)
    assert cfg.model.name == "tiny" and cfg.training["max_steps"] == 2
    lr = res.best_params["training.learning_rate"]
    assert cfg.training["learning_rate"] == lr == best_row["training.learning_rate"]
    assert cfg.model.hidden_dropout == res.best_params["model.hidden_dropout"]
    assert cfg.training["per_device_train_batch_size"] == res.best_params["training.per_device_train_batch_size"]
    assert (tmp_path / "optimisation_history.png").stat().st_size > 1000
    history = pd.read_csv(tmp_path / "optimisation_history.csv")
    assert history["value"].notna().all()  # the pruned trial shows its last reported UAR
    assert (res.best_run / "emovox.json").exists() and not (tmp_path / "trial-1" / "emovox.json").exists()
    assert len(_study(tmp_path, 0, None).trials) == 3  # stored: a rerun into tmp_path continues the study


def test_cli_search_rejects_bad_space_and_overrides(tiny_manifest, tmp_path, capsys):
    from emovox.cli import main

    (tmp_path / "space.yaml").write_text("training.learning_rate: {uniform: [0, 1]}\n")
    args = ["search", "--manifest", str(tiny_manifest), "--trials", "1", "--out", str(tmp_path / "s"),
            "--model", "tiny"]
    assert main([*args, "--space", str(tmp_path / "space.yaml")]) == 2
    assert "training.learning_rate" in capsys.readouterr().err
    assert main([*args, "training.max_stepz=2"]) == 2
    assert "training.max_stepz" in capsys.readouterr().err


def test_space_follows_the_config():
    root = Path(__file__).resolve().parents[2] / "configs"
    demo = default_space(load_config(root / "demo.yaml", ["model.name=tiny"]))  # cached frozen features, AdamW
    assert "model.pooling" not in demo  # layer weighting: mean only (never attentive on cached features)
    stats = default_space(load_config(root / "demo.yaml", ["model.name=tiny", "model.layer_weighting=false"]))
    assert stats["model.pooling"].args == ("mean", "stats")
    assert not {"augment.enabled", "augment.strength", "model.freeze_layers", "model.hidden_dropout"} & set(demo)
    probe = default_space(load_config(root / "whisper-probe.yaml", ["model.name=tiny"]))  # ridge
    assert "training.head_l2" in probe and "training.learning_rate" not in probe
    copies = default_space(load_config(root / "ravdess-whisper.yaml", ["model.name=tiny"]))  # augmented copies
    assert "augment.strength" in copies
    tuned = default_space(load_config(None, ["model.name=tiny"]))  # fine-tuning: the model's own levers
    assert tuned["model.pooling"].args == ("mean", "attentive") and "model.hidden_dropout" in tuned


def test_cli_search_with_the_demo_config_finishes_and_failed_trials_are_one_line(tiny_manifest, tmp_path, capsys):
    from emovox.cli import main

    demo = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    args = ["search", "--config", str(demo), "--manifest", str(tiny_manifest), "--model", "tiny",
            "training.max_steps=6", "training.eval_steps=3"]
    assert main([*args, "--trials", "3", "--out", str(tmp_path / "ok")]) == 0
    trials = pd.read_csv(tmp_path / "ok" / "trials.csv")
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"} and "model.pooling" not in trials
    capsys.readouterr()
    # a space that cannot run here: every trial fails with its reason, the search goes on to the end
    (tmp_path / "space.yaml").write_text("model.pooling: {choice: [attentive]}\ntraining.learning_rate: {log: [1e-4, 1e-3]}\n")
    assert main([*args, "--trials", "2", "--out", str(tmp_path / "bad"), "--space", str(tmp_path / "space.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failed = [line for line in err.splitlines() if line.startswith("trial ")]
    assert len(failed) == 2 and all("failed: cached features need" in line for line in failed), err
    trials = pd.read_csv(tmp_path / "bad" / "trials.csv")
    assert trials["state"].tolist() == ["FAIL", "FAIL"] and trials["error"].str.contains("pooling").all()
    assert "no trial completed" in err.splitlines()[-1]
