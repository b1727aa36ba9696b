"""Fine-tuning the top layers on cached lower-layer frames (tiny random Whisper): the lower and
upper halves compute what the whole encoder computes, the frames are encoded once and cached,
the tuned layers change and the frozen ones do not, and the saved run dir predicts what the
cached-lower + tuned-upper path gives."""
import json

import numpy as np
import pytest
import torch

from emovox.config import ModelConfig
from emovox.data.dataset import AudioDataset
from emovox.data.manifest import load_manifest
from emovox.errors import BadConfig
from emovox.labels import get_scheme
from emovox.models.backbones import backbone_for
from emovox.models.heads import pooled_logits
from emovox.models.loading import feature_extractor_for, load_model, load_trained
from emovox.testing import save_tiny_whisper
from emovox.training import feature_cache, layer_cache
from emovox.training.train import train

from conftest import TINY_TRAIN

S6 = get_scheme("crema-d-6")
UPPER = [*TINY_TRAIN, "model.freeze_backbone=true", "model.pooling=stats", "model.tune_upper_layers=1",
         "training.head_solver=ridge", "training.head_l2=1", "training.class_weighted_loss=true",
         "training.frame_time_mask=0.2", "training.frame_channel_mask=0.1", "training.learning_rate=3e-3",
         "training.early_stopping_patience=0", "training.metric_for_best_model=eval_uar"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny", layers=3)


def _dataset(df, model, fe):
    family = backbone_for(model)
    return AudioDataset(df, S6, lambda w: family.featurize(fe, w), max_seconds=1.0, input_name=family.input_name)


def _upper_from_lower(model, fe, ds, k, dtype):
    """Statistics through the cached-lower + upper path, the lower half encoded in ``dtype``."""
    base = model.base_model.eval()
    items = [layer_cache.lower_encoder(k, dtype)(base, [ds[i]["input_features"]], use_mask=True)[0]
             for i in range(len(ds))]
    with torch.no_grad():
        return torch.cat([layer_cache.upper_stats(model, *layer_cache.pad_frames(items[i:i + 3]))
                          for i in range(0, len(items), 3)])


@pytest.mark.parametrize("k", [0, 2])
def test_lower_then_upper_layers_equal_the_whole_encoder(tiny_manifest, whisper_dir, k):
    model, fe = load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir), freeze_backbone=True,
                                                             pooling="stats"), max_seconds=1.0)
    ds = _dataset(load_manifest(tiny_manifest).head(7), model, fe)
    whole = feature_cache.cached_features(model, fe, ds, use_cache=False)
    exact = _upper_from_lower(model, fe, ds, k, torch.float32)
    assert exact.shape == whole.shape and (exact - whole).abs().max() < 1e-4
    half = _upper_from_lower(model, fe, ds, k, torch.float16)  # as cached: close, not equal
    assert (half - whole).abs().max() < 2e-2 * whole.abs().max()


def test_tuned_run_dir_predicts_what_the_cached_path_gives(tiny_manifest, whisper_dir, tmp_path, monkeypatch, cache_dir):
    from emovox.inference.predict import Predictor

    df = load_manifest(tiny_manifest)
    n_train, n_val = (df["split"] == "train").sum(), (df["split"] == "validation").sum()
    calls: list[int] = []
    real = layer_cache.lower_encoder

    def counting(k, dtype=torch.float16):
        enc = real(k, dtype)
        return lambda base, values, *, use_mask: calls.append(len(values)) or enc(base, values, use_mask=use_mask)

    monkeypatch.setattr(layer_cache, "lower_encoder", counting)
    res = train(manifest=tiny_manifest, out=tmp_path / "u", model=str(whisper_dir), progress=False, overrides=UPPER)
    assert sum(calls) == n_train + n_val
    assert len(list((cache_dir).rglob("frames-k2/*.npz"))) == n_train + n_val
    logs = [json.loads(line) for line in (tmp_path / "u" / "train_log.jsonl").read_text().splitlines()]
    assert any("eval_uar" in r for r in logs) and any("learning_rate" in r for r in logs)
    assert res.steps == 12  # TINY_TRAIN's max_steps, no early stop (patience 0)
    tuned, frozen = load_trained(tmp_path / "u"), load_model(str(whisper_dir), S6, ModelConfig(name=str(whisper_dir)))[0]
    enc_t, enc_f = backbone_for(tuned).encoder_of(tuned), backbone_for(frozen).encoder_of(frozen)
    for name, p in enc_f.layers[0].state_dict().items():  # below k: untouched
        assert torch.equal(p, enc_t.layers[0].state_dict()[name]), name
    assert not torch.allclose(enc_f.layers[2].fc1.weight, enc_t.layers[2].fc1.weight)  # tuned
    # predict runs the whole encoder; the cached-lower (exact, fp32) + tuned-upper path gives the same
    fe = feature_extractor_for(tmp_path / "u", tuned.config)
    test = df[df["split"] == "test"]
    ds = _dataset(test, tuned, fe)
    with torch.no_grad():
        logits = pooled_logits(tuned, _upper_from_lower(tuned, fe, ds, 2, torch.float32)).logits
    expect = torch.softmax(logits / res.metrics["temperature"], -1)
    rows = list(Predictor.from_run_dir(tmp_path / "u").predict_files(list(test["path"]), top_k=len(S6)))
    got = torch.tensor([[dict((t["label"], t["score"]) for t in r["top_k"])[lab] for lab in S6.labels] for r in rows])
    assert torch.allclose(got, expect, atol=1e-4)
    before = sum(calls)
    again = train(manifest=tiny_manifest, out=tmp_path / "v", model=str(whisper_dir), progress=False, overrides=UPPER)
    assert sum(calls) == before, "the rerun encoded again"
    assert again.metrics["eval_uar"] == pytest.approx(res.metrics["eval_uar"])  # seeded


def test_settings_it_cannot_train_are_refused(tiny_manifest, whisper_dir, tmp_path):
    for bad, match in ((["model.pooling=mean"], "pooling=stats"), (["model.tune_upper_layers=4"], "1 .. 3")):
        with pytest.raises(BadConfig, match=match):
            train(manifest=tiny_manifest, out=tmp_path / "x", model=str(whisper_dir), progress=False,
                  overrides=[*UPPER, *bad])
    with pytest.raises(BadConfig, match="cannot run its layers in parts"):
        train(manifest=tiny_manifest, out=tmp_path / "y", model="tiny", progress=False, overrides=UPPER)


def test_masks_drop_frames_in_spans_and_keep_one():
    gen = torch.Generator().manual_seed(0)
    frames, mask = torch.ones(2, 100, 64), torch.ones(2, 100, dtype=torch.bool)
    mask[1, 5:] = False
    from emovox.training.upper_tuning import masked

    f, m = masked(frames, mask, time_p=0.3, channel_p=0.5, gen=gen)
    assert 40 <= int(m[0].sum()) < 100 and m[1].sum() >= 1 and not m[1, 5:].any()
    assert (f[0] == 0).all(dim=0).any() and mask.all(dim=1)[0]  # channels zeroed; the input untouched
    assert np.isclose(float(frames.mean()), 1.0)
