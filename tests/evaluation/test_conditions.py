"""Each stress condition changes the audio as it says: SNR, band edges, decay time, bitrate,
level and clipping are measured on the degraded wave."""
import numpy as np
import pytest
from scipy.signal import welch

from emovox.errors import BadConfig
from emovox.evaluation.conditions import (
    DEFAULTS,
    Babble,
    bitrate,
    codec_round_trip,
    condition,
    conditions,
    synthetic_rir,
)
from emovox.testing import tone

SR = 16000


def _db(x) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64))))


def _psd(x):
    f, p = welch(x, fs=SR, nperseg=2048)
    return f, p


def _band_db(x, lo, hi) -> float:
    f, p = _psd(x)
    return float(10 * np.log10(p[(f >= lo) & (f <= hi)].mean() + 1e-30))


@pytest.fixture(scope="module")
def speech():
    return tone(3.0, freq=180.0, seed=1) + tone(3.0, freq=310.0, seed=2) * 0.5


@pytest.fixture(scope="module")
def noise():
    return (0.1 * np.random.default_rng(5).standard_normal(4 * SR)).astype(np.float32)


def _apply(name, wave, babble=None, exclude="", index=0):
    c = condition(name)
    return c.apply(wave, rng=c.key(0, index), babble=babble, exclude=exclude)


@pytest.mark.parametrize("name,snr", [("white-10dB", 10), ("white-0dB", 0), ("pink-10dB", 10), ("pink-5dB", 5)])
def test_noise_is_mixed_at_the_named_snr(speech, name, snr):
    out = _apply(name, speech)
    assert out.shape == speech.shape and out.dtype == np.float32
    assert _db(speech) - _db(out - speech) == pytest.approx(snr, abs=0.01)


def test_pink_noise_falls_3_db_per_octave(speech):
    added = _apply("pink-0dB", np.zeros_like(speech) + speech) - speech
    f, p = _psd(added)
    keep = (f >= 100) & (f <= 6000)
    slope = np.polyfit(np.log2(f[keep]), 10 * np.log10(p[keep]), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.5)
    white = _apply("white-0dB", speech) - speech
    f, p = _psd(white)
    assert np.polyfit(np.log2(f[keep]), 10 * np.log10(p[keep]), 1)[0] == pytest.approx(0.0, abs=0.5)


def test_babble_is_other_speakers_at_the_snr():
    a = tone(2.0, freq=150.0, seed=1)          # speaker A's voice: energy at 150 Hz and harmonics
    b = tone(2.0, freq=1100.0, seed=2)          # speaker B's voice: 1100 Hz and up
    src = Babble([a, a, b, b], ["A", "A", "B", "B"])
    out = _apply("babble-5dB", a, babble=src, exclude="A")
    added = out - a
    assert _db(a) - _db(added) == pytest.approx(5.0, abs=0.01)
    assert _band_db(added, 130, 170) < _band_db(added, 1050, 1150) - 30  # none of A's own voice
    with pytest.raises(BadConfig, match="babble"):
        _apply("babble-5dB", a)


def test_synthetic_rir_decays_60_db_in_rt60():
    for rt60 in (0.3, 0.6, 1.0):
        h = synthetic_rir(rt60, np.random.default_rng(0))
        edc = 10 * np.log10(np.cumsum(h[::-1] ** 2)[::-1] / np.sum(h ** 2))  # Schroeder integral
        t = np.arange(len(h)) / SR
        t5, t25 = t[np.argmax(edc <= -5)], t[np.argmax(edc <= -25)]
        assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.1)  # T20 extrapolated to 60 dB


def test_reverb_smears_in_time_and_keeps_level(speech):
    click = np.zeros(SR, np.float32)
    click[100] = 1.0
    out = _apply("reverb-0.6s", click)
    assert np.abs(out[100 + int(0.2 * SR):]).max() > 0.01 * np.abs(out).max()  # tail 200 ms later
    rev = _apply("reverb-0.6s", speech)
    assert _db(rev) == pytest.approx(_db(speech), abs=0.01)


def _edges(out, inp, floor=-3.0):
    f, po = _psd(out)
    _, pi = _psd(inp)
    gain = 10 * np.log10(po / pi)
    gain -= gain[(f > 800) & (f < 1500)].mean()
    passband = f[gain > floor]
    return passband.min(), passband.max(), f, gain


def test_telephone_band_edges_are_300_and_3400_hz(noise):
    out = _apply("telephone", noise)
    lo, hi, f, gain = _edges(out, noise)
    assert lo == pytest.approx(300, abs=60) and hi == pytest.approx(3400, abs=150)
    assert gain[(f > 20) & (f < 120)].max() < -20 and gain[f > 4200].max() < -30


def test_gsm_is_narrow_band_at_13_kbps(speech, noise):
    _, hi, _, _ = _edges(_apply("gsm", noise), noise, floor=-10)
    assert hi < 3800
    assert bitrate(condition("gsm"), speech) == pytest.approx(13.2, abs=0.5)


@pytest.mark.parametrize("name,kbps", [("mp3-16k", 16), ("mp3-8k", 8), ("opus-16k", 16), ("opus-8k", 8)])
def test_codec_round_trip_at_the_named_bitrate(speech, name, kbps):
    c = condition(name)
    out = _apply(name, speech)
    assert out.shape == speech.shape
    assert np.corrcoef(out, speech)[0, 1] > 0.8  # aligned: the MP3 encoder delay is removed
    assert not np.allclose(out, speech, atol=1e-3)
    assert bitrate(c, speech) == pytest.approx(kbps, rel=0.35)


@pytest.mark.parametrize("name,kbps", [("aac-32k", 32), ("aac-16k", 16)])
def test_aac_round_trip_at_the_named_bitrate(speech, name, kbps, monkeypatch):
    """AAC (what phones record) through FFmpeg: aligned, lossy, at its bitrate; asked for by name
    (not in the default set); without PyAV one line saying how to install it."""
    pytest.importorskip("av", reason="the formats extra (PyAV) is part of make install")
    out = _apply(name, speech)
    assert out.shape == speech.shape and np.corrcoef(out, speech)[0, 1] > 0.9
    assert not np.allclose(out, speech, atol=1e-3)
    assert bitrate(condition(name), speech) == pytest.approx(kbps, rel=0.35)
    assert [c.name for c in conditions("aac")] == ["aac-32k", "aac-16k"]
    from emovox.evaluation.conditions import OPTIONAL
    from emovox.evaluation.stress_report import FAMILY_NOTES

    assert set(DEFAULTS) | set(OPTIONAL) == set(FAMILY_NOTES)  # every family is described in report.md
    from emovox.config import AugmentConfig
    from emovox.training.channel_copies import check_channel, condition_family, draw_condition

    names, snr = check_channel(AugmentConfig(channel_conditions=["aac"], channel_copies=1))  # channel copies too
    assert condition_family("aac") == "aac" and draw_condition(names, snr, np.random.default_rng(0)).family == "aac"
    assert "aac" not in {c.family for c in conditions()}
    from emovox.data import ffmpeg_decode

    monkeypatch.setattr(ffmpeg_decode, "available", lambda: False)
    with pytest.raises(BadConfig, match="pip install 'emovox\\[formats\\]'"):
        _apply(name, speech)


def test_vorbis_lowest_quality_and_lossless_round_trip(speech):
    assert np.corrcoef(_apply("vorbis-q0", speech), speech)[0, 1] > 0.8
    assert bitrate(condition("vorbis-q0"), speech) < 48
    flac, _ = codec_round_trip(speech, format="FLAC", subtype="PCM_16")
    assert np.abs(flac - speech).max() < 1e-4


@pytest.mark.parametrize("name,db", [("gain-30dB", -30), ("gain-10dB", -10), ("gain+20dB", 20)])
def test_gain_changes_the_level_by_the_named_db(speech, name, db):
    assert _db(_apply(name, speech)) - _db(speech) == pytest.approx(db, abs=1e-3)


@pytest.mark.parametrize("pct", [1, 10])
def test_clipping_flattens_the_named_share_of_samples(speech, pct):
    out = _apply(f"clip-{pct}pct", speech)
    level = np.abs(out).max()
    assert np.mean(np.abs(out) >= level - 1e-7) * 100 == pytest.approx(pct, rel=0.1)
    assert np.array_equal(out[np.abs(speech) < level], speech[np.abs(speech) < level])


def test_resampling_chains_remove_what_the_lowest_rate_cannot_hold(noise):
    # HQ to 8 kHz removes the upper band; the chain's quick (QQ) filters leave aliases ~12 dB down
    for name, nyquist, at_least in (("resample-8k", 4000, 30), ("resample-chain", 5512, 10)):
        out = _apply(name, noise)
        assert out.shape == noise.shape
        assert _band_db(out, 1000, 2000) == pytest.approx(_band_db(noise, 1000, 2000), abs=1.0)
        assert _band_db(out, nyquist + 500, 7500) < _band_db(noise, nyquist + 500, 7500) - at_least


def test_seeded_per_condition_and_clip(speech):
    c = condition("white-10dB")
    one = c.apply(speech, rng=c.key(0, 3))
    assert np.array_equal(one, c.apply(speech, rng=c.key(0, 3)))
    assert not np.array_equal(one, c.apply(speech, rng=c.key(0, 4)))
    assert not np.array_equal(one, c.apply(speech, rng=c.key(1, 3)))


def test_names_families_and_errors():
    every = conditions()
    assert [c.name for c in every] == [n for names in DEFAULTS.values() for n in names]
    assert {c.family for c in every} == set(DEFAULTS)
    picked = conditions("white,telephone,reverb-1.5s,white-10dB")
    assert [c.name for c in picked] == ["white-20dB", "white-10dB", "white-0dB", "telephone", "reverb-1.5s"]
    assert picked[-1].params == {"rt60": 1.5}
    assert condition("gain+20dB").params == {"db": 20.0} and condition("gain-30dB").params == {"db": -30.0}
    with pytest.raises(BadConfig, match="unknown stress condition 'hum'.*white-10dB"):
        conditions("white,hum")
    with pytest.raises(BadConfig, match="rt60"):
        condition("reverb-9s")
    with pytest.raises(BadConfig, match="percent"):
        condition("clip-100pct")
