"""The frozen-feature fast path: cached features equal fresh ones and are reused, the cache key
follows the file, a head on per-layer means equals the full model, and train() writes a run dir
that predicts."""
import json

import numpy as np
import pytest
import torch

from emovox.models.backbones.wav2vec2 import Wav2Vec2Family
from emovox.training import feature_cache as features
from emovox.data.dataset import AudioDataset
from emovox.errors import BadConfig
from emovox.models.heads import pooled_logits
from emovox.labels import get_scheme
from emovox.data.manifest import load_manifest
from emovox.config import ModelConfig
from emovox.models.loading import load_model
from emovox.testing import write_tone

S6, S21 = get_scheme("crema-d-6"), get_scheme("crema-d-21")



@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def _dataset(tiny_manifest, fe, n=6):
    df = load_manifest(tiny_manifest).head(n)
    return AudioDataset(df, S6, lambda w: Wav2Vec2Family().featurize(fe, w), max_seconds=1.0)


def _counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = features.encode_batch

    def counted(base, values, *, use_mask):
        calls.append(len(values))
        return real(base, values, use_mask=use_mask)

    monkeypatch.setattr(features, "encode_batch", counted)
    return calls


def test_cached_features_equal_fresh_ones_and_are_reused(tiny_manifest, monkeypatch, cache_dir):
    model, fe = load_model("tiny", S6, ModelConfig(freeze_backbone=True))
    ds = _dataset(tiny_manifest, fe)
    calls = _counting(monkeypatch)
    first = features.cached_features(model, fe, ds)
    assert sum(calls) == len(ds) and first.shape == (len(ds), 2, 4, 32)  # means, stds of 2 layers + embeddings, then the output
    assert len(list(cache_dir.rglob("*.npy"))) == len(ds)
    second = features.cached_features(model, fe, ds)
    assert sum(calls) == len(ds), "the second call encoded again"
    assert torch.equal(first, second)
    base = model.base_model.eval()
    for i in (0, 3):  # one clip at a time, no padding at all
        alone = features.encode_batch(base, [ds[i]["input_values"]], use_mask=True)[0]
        assert np.abs(alone - first[i].numpy()).max() < 1e-5
    other, _ = load_model("tiny", S6, ModelConfig(freeze_backbone=True), seed=1)  # other weights, other key
    assert features.model_key(other, fe) != features.model_key(model, fe)


def test_cache_key_follows_the_file(tmp_path):
    path = write_tone(tmp_path / "a.wav", 0.5)
    key = features.clip_key(path, 1.0)
    assert features.clip_key(path, 1.0) == key and features.clip_key(path, 2.0) != key
    write_tone(path, 0.6, freq=300.0)
    assert features.clip_key(path, 1.0) != key


@pytest.mark.parametrize("kw", [dict(), dict(layer_weighting=True), dict(multitask=True, layer_weighting=True),
                                dict(pooling="stats"), dict(pooling="stats", multitask=True)])
def test_head_on_layer_statistics_equals_the_full_model(kw):
    model, _ = load_model("tiny", S21, ModelConfig(**kw), seed=4)
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_weights" in name:
                p.normal_()
        waves = [np.sin(np.arange(6000) / 7.0).astype(np.float32), np.cos(np.arange(9000) / 5.0).astype(np.float32)]
        means = torch.from_numpy(features.encode_batch(model.base_model, waves, use_mask=True))
        x = torch.zeros(2, 9000)
        mask = torch.zeros(2, 9000, dtype=torch.long)
        for k, w in enumerate(waves):
            x[k, : len(w)], mask[k, : len(w)] = torch.from_numpy(w), 1
        full = model(x, attention_mask=mask).logits
        head = pooled_logits(model, means).logits
    assert (full - head).abs().max() < 1e-5


def test_attentive_pooling_cannot_use_cached_features(tiny_manifest, tmp_path):
    from emovox.training.train import train

    with pytest.raises(BadConfig, match="pooling=mean"):
        train(manifest=tiny_manifest, out=tmp_path / "run", model="tiny", progress=False,
              overrides=["model.freeze_backbone=true", "model.pooling=attentive"])


def test_train_on_cached_features_writes_a_run_dir_that_predicts(tiny_manifest, tmp_path, monkeypatch):
    from emovox.inference.predict import Predictor
    from emovox.rundir import RunDir, read_meta
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    overrides = [*TINY_TRAIN, "model.freeze_backbone=true", "model.layer_weighting=true",
                 "training.max_steps=40", "training.eval_steps=10", "training.head_learning_rate=5e-2"]
    result = train(manifest=tiny_manifest, out=tmp_path / "a", model="tiny", progress=False, overrides=overrides)
    run = RunDir(result.run_dir)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "emovox.json", "config.yaml",
                 "train_log.jsonl", "curves.png", "train_metrics.json"):
        assert (run.root / name).exists(), name
    logs = [json.loads(line) for line in run.log.read_text().splitlines()]
    losses = [r["loss"] for r in logs if "loss" in r]
    assert len(losses) >= 10 and losses[-1] < losses[0]
    assert any("eval_uar" in r for r in logs) and result.steps <= 40
    meta = read_meta(run)
    assert meta["scheme"]["name"] == "crema-d-6" and meta["config"]["model"]["freeze_backbone"] is True
    clips = list(load_manifest(tiny_manifest, split="validation")["path"])
    rows = list(Predictor.from_run_dir(run.root).predict_files(clips))
    assert all(r["label"] in S6.labels for r in rows)
    calls = _counting(monkeypatch)  # a rerun (same seed) reads the cache and trains the same head
    again = train(manifest=tiny_manifest, out=tmp_path / "b", model="tiny", progress=False, overrides=overrides)
    assert calls == [] and again.metrics["eval_loss"] == pytest.approx(result.metrics["eval_loss"], abs=1e-6)


def test_stats_probe_with_lbfgs_refit_and_augmented_copies(tiny_manifest, tmp_path, monkeypatch, cache_dir):
    """A stats head fitted by L-BFGS on clean + augmented copies, then refitted on train +
    validation: every copy is encoded once and cached, the fit is deterministic, the refit changes
    the head, and the saved run dir scores raw audio exactly as the head scores cached features."""
    from emovox.inference.predict import Predictor
    from emovox.models.loading import feature_extractor_for, load_trained
    from emovox.rundir import RunDir
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    df = load_manifest(tiny_manifest)
    n_train, n_val = (df["split"] == "train").sum(), (df["split"] == "validation").sum()
    base = [*TINY_TRAIN, "model.freeze_backbone=true", "model.pooling=stats", "training.head_solver=lbfgs",
            "training.head_l2=0.1", "augment.enabled=true", "augment.feature_copies=1"]
    calls = _counting(monkeypatch)
    plain = train(manifest=tiny_manifest, out=tmp_path / "plain", model="tiny", progress=False, overrides=base)
    assert sum(calls) == 2 * n_train + n_val  # clean + one copy of each training clip, clean validation
    refit = train(manifest=tiny_manifest, out=tmp_path / "refit", model="tiny", progress=False,
                  overrides=[*base, "training.head_refit=true"])
    assert sum(calls) == 2 * n_train + 2 * n_val  # only the validation copies were new
    train(manifest=tiny_manifest, out=tmp_path / "two", model="tiny", progress=False,
          overrides=[*base, "training.head_refit=true", "augment.feature_copies=2"])
    assert sum(calls) == 3 * n_train + 3 * n_val  # asking for a second copy reuses the first
    assert refit.metrics["refit_on_validation"] is True
    assert refit.metrics["eval_loss"] == pytest.approx(plain.metrics["eval_loss"], abs=1e-6)  # same first fit
    a, b = load_trained(tmp_path / "plain"), load_trained(tmp_path / "refit")
    assert not torch.allclose(a.classifier.linear.weight, b.classifier.linear.weight)
    logs = [json.loads(line) for line in RunDir(tmp_path / "refit").log.read_text().splitlines()]
    assert [r["n_train"] for r in logs if "n_train" in r] == [2 * n_train, 2 * (n_train + n_val)]
    clean = [str(p) for p in df[df["split"] == "test"]["path"]]
    model, fe = b, feature_extractor_for(tmp_path / "refit", b.config)
    ds = AudioDataset(df[df["split"] == "test"], S6, lambda w: Wav2Vec2Family().featurize(fe, w), max_seconds=1.0)
    with torch.no_grad():
        t = refit.metrics["temperature"]  # predict applies the calibrated temperature
        expect = torch.softmax(pooled_logits(model, features.cached_features(model, fe, ds)).logits / t, -1)
    rows = list(Predictor.from_run_dir(tmp_path / "refit").predict_files(clean, top_k=len(S6)))
    got = torch.tensor([[dict((t["label"], t["score"]) for t in r["top_k"])[lab] for lab in S6.labels] for r in rows])
    assert torch.allclose(got, expect, atol=1e-4)
    with pytest.raises(BadConfig, match="head_refit"):
        train(manifest=tiny_manifest, out=tmp_path / "x", model="tiny", progress=False,
              overrides=[*TINY_TRAIN, "model.freeze_backbone=true", "training.head_refit=true"])


def test_path_seeded_augmentation_follows_the_clip_not_its_position(tiny_manifest):
    """Cached augmented copies are keyed by clip, so a clip must get the same augmentation in
    every dataset (fold) that holds it, wherever it sits."""
    from emovox.config import AugmentConfig
    from emovox.data.augment import build_augment

    df = load_manifest(tiny_manifest).head(5)
    aug = build_augment(AugmentConfig(noise_p=1.0, pitch_p=0.0, stretch_p=0.0))
    fwd = AudioDataset(df, S6, max_seconds=1.0, augment=aug, seed_by_path=True)
    rev = AudioDataset(df.iloc[::-1], S6, max_seconds=1.0, augment=aug, seed_by_path=True)
    by_index = AudioDataset(df.iloc[::-1], S6, max_seconds=1.0, augment=aug)
    for ds in (fwd, rev, by_index):
        ds.set_epoch(1)
    assert np.array_equal(fwd[0]["input_values"], rev[4]["input_values"])
    assert not np.array_equal(fwd[0]["input_values"], by_index[4]["input_values"])
    rev.set_epoch(2)
    assert not np.array_equal(fwd[0]["input_values"], rev[4]["input_values"])


def test_a_clip_listed_twice_is_encoded_once_and_loading_overlaps_encoding(tiny_manifest, monkeypatch):
    import threading

    import pandas as pd

    model, fe = load_model("tiny", S6, ModelConfig(freeze_backbone=True))
    df = load_manifest(tiny_manifest).head(4)
    df = pd.concat([df, df.iloc[[1, 1, 3]]], ignore_index=True)  # the same clips again
    loaders: list[str] = []

    def featurize(w):
        loaders.append(threading.current_thread().name)
        return Wav2Vec2Family().featurize(fe, w)

    ds = AudioDataset(df, S6, featurize, max_seconds=1.0)
    calls = _counting(monkeypatch)
    feats = features.cached_features(model, fe, ds, use_cache=False)
    assert sum(calls) == 4 and len(loaders) == 4, "each distinct clip is decoded and encoded once"
    assert all(name.startswith("emovox-decode") for name in loaders), "inputs are prepared off the main thread"
    assert feats.shape[0] == len(df)
    assert torch.equal(feats[4], feats[1]) and torch.equal(feats[5], feats[1]) and torch.equal(feats[6], feats[3])


def test_trim_silence_is_saved_with_the_run_and_predict_trims_as_training_did(tiny_manifest, tmp_path):
    import soundfile as sf

    from emovox.data.audio import load_audio
    from emovox.inference.predict import Predictor
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    overrides = [*TINY_TRAIN, "model.freeze_backbone=true", "model.pooling=stats", "training.head_solver=lbfgs",
                 "training.head_l2=30", "training.head_max_iter=50"]
    runs = {}
    for db in ("35", "null"):
        runs[db] = train(manifest=tiny_manifest, out=tmp_path / f"run{db}", model="tiny", progress=False,
                         overrides=[*overrides, f"model.trim_silence_db={db}"]).run_dir
    saved = json.loads((runs["35"] / "preprocessor_config.json").read_text())
    assert saved.get("emovox_trim_silence_db") == 35.0
    assert "emovox_trim_silence_db" not in json.loads((runs["null"] / "preprocessor_config.json").read_text())
    # the same clip after 0.5 s or 2 s of faint hiss (whole 10 ms frames): trimmed, both are the
    # clip with the same 0.15 s of hiss either side, so the trimming run scores them alike
    clip = load_audio(load_manifest(tiny_manifest, split="validation")["path"].iloc[0])
    hiss = 1e-4 * np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    paths = []
    for lead in (8000, 32000):
        paths.append(tmp_path / f"lead{lead}.wav")
        sf.write(paths[-1], np.concatenate([hiss[-lead:], clip, hiss[:8000]]), 16000, subtype="FLOAT")

    def scores(run):
        rows = list(Predictor.from_run_dir(run).predict_files(paths, top_k=6))
        return [{t["label"]: t["score"] for t in r["top_k"]} for r in rows]

    a, b = scores(runs["35"])
    assert all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
    # what each run's predictor feeds its model: the trimmed clip, or the whole file
    for db, want in (("35", [len(clip) + 4800] * 2), ("null", [8000 + len(clip) + 8000, 32000 + len(clip) + 8000])):
        member = Predictor.from_run_dir(runs[db]).members[0]
        assert [member.normalise(load_audio(p)).shape[-1] for p in paths] == want


def test_trim_silence_must_be_a_positive_number(tiny_manifest):
    for bad in (-3, "loud", True):
        with pytest.raises(BadConfig, match="trim_silence_db"):
            load_model("tiny", S6, ModelConfig(trim_silence_db=bad))


def test_ridge_head_is_the_least_squares_probe_and_runs_on_raw_audio(tiny_manifest, tmp_path):
    """head_solver=ridge: the saved head (standardisation folded in) gives, on cached features,
    the scores of scikit-learn's Ridge fitted on the standardised features with one-vs-rest +-1
    targets, balanced sample weights and alpha = head_l2 * N; predict applies the temperature."""
    from sklearn.linear_model import Ridge

    from emovox.models.loading import feature_extractor_for, load_trained
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    df = load_manifest(tiny_manifest)
    base = [*TINY_TRAIN, "model.freeze_backbone=true", "model.pooling=stats", "training.head_solver=ridge",
            "training.head_l2=3", "training.class_weighted_loss=true"]
    res = train(manifest=tiny_manifest, out=tmp_path / "r", model="tiny", progress=False, overrides=base)
    model = load_trained(tmp_path / "r")
    fe = feature_extractor_for(tmp_path / "r", model.config)

    def feats(split):
        part = df[df["split"] == split]
        ds = AudioDataset(part, S6, lambda w: Wav2Vec2Family().featurize(fe, w), max_seconds=1.0)
        return features.cached_features(model, fe, ds).flatten(1).double().numpy(), np.array(ds.labels)

    (x, y), (xt, _) = feats("train"), feats("test")
    mu, sd = x.mean(0), np.maximum(x.std(0, ddof=1), 1e-6)  # as training.feature_scaling standardises
    z = lambda a: (a - mu) / sd  # noqa: E731
    targets = -np.ones((len(y), len(S6)))
    targets[np.arange(len(y)), y] = 1.0
    counts = np.bincount(y, minlength=len(S6))
    w = (len(y) / ((counts > 0).sum() * counts))[y]
    ref = Ridge(alpha=3 * len(y)).fit(z(x), targets, sample_weight=w).predict(z(xt))
    with torch.no_grad():
        got = pooled_logits(model, torch.from_numpy(xt).float().view(len(xt), 2, -1, 32)).logits.numpy()
    assert np.abs(got - ref).max() < 2e-3 * max(1.0, np.abs(ref).max())
    assert 0.05 <= res.metrics["temperature"] < 1.0  # scores of about +-1 need sharpening to be probabilities
    with pytest.raises(BadConfig, match="head_solver=ridge"):
        train(manifest=tiny_manifest, out=tmp_path / "m", model="tiny", progress=False,
              overrides=[*base, "model.pooling=mean"])
    refit = train(manifest=tiny_manifest, out=tmp_path / "f", model="tiny", progress=False,
                  overrides=[*base, "training.head_refit=true"])
    assert refit.metrics["refit_on_validation"] is True
