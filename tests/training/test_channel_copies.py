"""Channel copies (augment.channel_copies): each training copy is degraded as configured, babble
comes from training speakers only, validation and test clips are never degraded, and the cache
key follows the settings."""
import numpy as np
import pytest

from emovox.config import AugmentConfig, ModelConfig, load_config
from emovox.data.audio import SAMPLE_RATE, load_audio
from emovox.data.dataset import path_seed
from emovox.data.manifest import load_manifest
from emovox.errors import BadConfig
from emovox.labels import get_scheme
from emovox.models.loading import load_model
from emovox.training import channel_copies
from emovox.training.channel_copies import channel_augment, check_channel
from emovox.training.features import clip_datasets

S6 = get_scheme("crema-d-6")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def _parts(tiny_manifest):
    df = load_manifest(tiny_manifest)
    return df[df["split"] == "train"], df[df["split"] == "validation"]


def _power(x):
    return float(np.mean(np.square(x, dtype=np.float64)))


def test_noise_copies_are_mixed_at_an_snr_in_the_configured_range(tiny_manifest):
    train, _ = _parts(tiny_manifest)
    aug, _ = channel_augment(AugmentConfig(channel_conditions=["white"], channel_snr_db=[5.0, 15.0]), train, train,
                             max_seconds=1.0)
    snrs = []
    for p in train["path"][:6]:
        w = load_audio(p, max_seconds=1.0)
        out = aug(w, 0, 1, path_seed(p))
        snr = 10 * np.log10(_power(w) / _power(out - w))
        cond, _ = aug.drawn(0, 1, path_seed(p))
        assert snr == pytest.approx(cond.params["snr_db"], abs=0.05) and 5.0 <= snr <= 15.0
        assert np.array_equal(out, aug(w, 0, 1, path_seed(p)))  # seeded per (seed, copy, clip)
        assert not np.array_equal(out, aug(w, 0, 2, path_seed(p)))  # the next copy differs
        snrs.append(snr)
    assert np.ptp(snrs) > 1.0  # drawn per clip, not one SNR for all


def test_telephone_copies_are_band_limited():
    aug, _ = channel_copies.ChannelAugment(["telephone"], (0.0, 20.0), None, {}), None
    w = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    out = aug(w, 0, 1, 7)
    f = np.fft.rfftfreq(len(w), 1 / SAMPLE_RATE)
    spec_in, spec_out = np.abs(np.fft.rfft(w)) ** 2, np.abs(np.fft.rfft(out)) ** 2
    above, inside = f > 4000, (f > 500) & (f < 3000)
    assert spec_out[above].sum() / spec_in[above].sum() < 1e-3  # nothing above the 8 kHz channel's band
    assert spec_out[inside].sum() / spec_in[inside].sum() > 0.5  # speech band kept


def test_conditions_are_drawn_from_the_list_and_babble_comes_from_the_pool(tiny_manifest):
    train, val = _parts(tiny_manifest)
    cfg = AugmentConfig(channel_conditions=["babble", "telephone", "gsm"], channel_snr_db=[0.0, 20.0])
    aug, _ = channel_augment(cfg, val, train, max_seconds=1.0)
    assert sorted(aug.babble.speakers) == sorted(train["speaker"].astype(str))  # training speakers only
    assert not set(aug.babble.speakers) & set(val["speaker"].astype(str))
    drawn = [aug.drawn(0, 1, k)[0] for k in range(60)]
    assert {c.family for c in drawn} == {"babble", "telephone", "gsm"}
    assert all(0.0 <= c.params["snr_db"] <= 20.0 for c in drawn if c.family == "babble")
    w = load_audio(val["path"].iloc[0], max_seconds=1.0)
    key = next(k for k in range(60) if aug.drawn(0, 1, k)[0].family == "babble")
    assert not np.allclose(aug(w, 0, 1, key), w)


def test_training_copies_only_training_clips_and_babble_from_the_training_split(tiny_manifest, tmp_path, monkeypatch):
    """Channel copies of the training clips only (validation too only for a refit on it); the
    babble pool is the training split; each copy is encoded once and cached."""
    from emovox.training import feature_cache, features
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    df = load_manifest(tiny_manifest)
    tr, va = df[df["split"] == "train"], df[df["split"] == "validation"]
    degraded, pools, calls = [], [], []
    real_call, real_make, real_encode = channel_copies.ChannelAugment.__call__, features.channel_augment, \
        feature_cache.encode_batch

    def recording(self, wave, seed, copy, key):
        degraded.append(key)
        return real_call(self, wave, seed, copy, key)

    def make(cfg, part, pool, **kw):
        pools.append(sorted(pool["path"]))
        return real_make(cfg, part, pool, **kw)

    monkeypatch.setattr(channel_copies.ChannelAugment, "__call__", recording)
    monkeypatch.setattr(features, "channel_augment", make)
    monkeypatch.setattr(feature_cache, "encode_batch", lambda b, v, *, use_mask: calls.append(len(v))
                        or real_encode(b, v, use_mask=use_mask))
    base = [*TINY_TRAIN, "model.freeze_backbone=true", "model.pooling=stats", "training.head_solver=ridge",
            "augment.enabled=true", "augment.channel_copies=1", "augment.channel_conditions=[babble,telephone]"]
    train(manifest=tiny_manifest, out=tmp_path / "a", model="tiny", progress=False, overrides=base)
    assert set(degraded) == {path_seed(p) for p in tr["path"]}  # never a validation or test clip
    assert pools == [sorted(tr["path"])]
    assert sum(calls) == 2 * len(tr) + len(va)
    degraded.clear()
    train(manifest=tiny_manifest, out=tmp_path / "b", model="tiny", progress=False,
          overrides=[*base, "training.head_refit=true"])
    assert set(degraded) == {path_seed(p) for p in va["path"]}  # the refit adds validation copies; train's cached
    assert pools[-1] == sorted(tr["path"])  # their babble is still the training speakers'
    assert sum(calls) == 2 * len(tr) + 2 * len(va)


def test_cache_key_follows_the_channel_settings(tiny_manifest):
    train, val = _parts(tiny_manifest)
    model, fe = load_model("tiny", S6, ModelConfig(freeze_backbone=True))

    def variants(*overrides, pool=train):
        cfg = load_config(None, ["augment.feature_copies=1", "augment.channel_copies=1", *overrides])
        return [v for _, v in clip_datasets(model, fe, train, S6, cfg, copies=1, channel=1, pool=pool)]

    clean, copy, channel = variants()
    assert clean == "" and copy != channel
    for other in (variants("augment.channel_snr_db=[5,10]"), variants("augment.channel_conditions=[babble,gsm]"),
                  variants("training.seed=1"), variants(pool=val)):
        assert other[2] != channel
    assert variants("augment.channel_snr_db=[5,10]")[1] == copy  # the augmented copy keeps its cached features
    assert variants("augment.noise_p=0.1")[2] == channel  # audiomentations settings do not shape channel copies
    no_babble = variants("augment.channel_conditions=[telephone]")[2]
    assert variants("augment.channel_conditions=[telephone]", pool=val)[2] == no_babble  # the pool only matters for babble


def test_bad_channel_settings_are_one_clear_error(tiny_manifest, tmp_path):
    from emovox.training.train import train

    from conftest import TINY_TRAIN

    with pytest.raises(BadConfig, match="hum"):
        check_channel(AugmentConfig(channel_conditions=["babble", "hum"]))
    with pytest.raises(BadConfig, match="channel_snr_db"):
        check_channel(AugmentConfig(channel_snr_db=[20, 0]))
    with pytest.raises(BadConfig, match="augment.enabled=true"):
        train(manifest=tiny_manifest, out=tmp_path / "x", model="tiny", progress=False,
              overrides=[*TINY_TRAIN, "model.freeze_backbone=true", "augment.channel_copies=1"])
