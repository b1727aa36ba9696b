import numpy as np
import pytest
import soundfile as sf

from emovox.data.audio import load_audio, read_info, stream_windows, window_bounds
from emovox.errors import BadAudio
from emovox.testing import make_broken_files, write_tone


def test_stereo_48k_is_downmixed_and_resampled(tmp_path):
    path = write_tone(tmp_path / "s.wav", 1.5, sr=48000, channels=2)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 24000) <= 2
    assert read_info(path).channels == 2 and read_info(path).duration == pytest.approx(1.5)


def test_max_seconds_cuts(tmp_path):
    path = write_tone(tmp_path / "long.flac", 3.0)
    assert len(load_audio(path, max_seconds=1.25)) == 20000


@pytest.mark.parametrize("kind,reason", [("corrupt", "not readable"), ("empty", "empty file"),
                                         ("text", "not readable"), ("zero_samples", "zero samples"),
                                         ("nan", "NaN"), ("silence", "silence")])
def test_bad_audio_is_named(tmp_path, kind, reason):
    path = make_broken_files(tmp_path)[kind]
    with pytest.raises(BadAudio, match=reason) as exc:
        load_audio(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_window_bounds_cover_everything():
    assert window_bounds(100, 200, 100) == [(0, 100)]
    b = window_bounds(1000, 300, 150)
    assert b[0] == (0, 300) and b[-1][1] == 1000 and all(e - s == 300 for s, e in b)
    covered = np.zeros(1000, bool)
    for s, e in b:
        covered[s:e] = True
    assert covered.all()


def test_stream_windows_match_whole_file(tmp_path):
    path = write_tone(tmp_path / "x.wav", 2.0, sr=16000)
    whole = load_audio(path)
    for start, w in stream_windows(path, window_seconds=0.5, hop_seconds=0.25):
        s = int(round(start * 16000))
        np.testing.assert_allclose(w, whole[s:s + len(w)], atol=1e-6)


def test_real_48k_originals(real_data):
    for path in sorted((real_data / "ravdess48k-originals").glob("*.wav")):
        info = read_info(path)
        wave = load_audio(path)
        assert info.sample_rate == 48000
        assert len(wave) / 16000 == pytest.approx(info.duration, abs=1e-3)
        assert np.isfinite(wave).all() and np.abs(wave).max() > 0.01
    assert any(sf.info(str(p)).channels == 2 for p in (real_data / "ravdess48k-originals").glob("*.wav"))


def test_trim_silence_cuts_quiet_edges_with_a_margin_and_keeps_loud_clips_whole():
    from emovox.data.audio import trim_silence

    rng = np.random.default_rng(0)
    speech = (0.3 * np.sin(np.arange(16000) / 3.0) * (1 + 0.5 * rng.standard_normal(16000))).astype(np.float32)
    hiss = lambda n: (1e-4 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731  -70 dB under the speech
    wave = np.concatenate([hiss(24000), speech, hiss(8000)])
    # speech from frame 150 to 249 (10 ms frames); 0.15 s = 15 frames of margin either side
    assert np.array_equal(trim_silence(wave, 35.0), wave[(150 - 15) * 160:(250 + 15) * 160])
    assert np.array_equal(trim_silence(speech, 35.0), speech)  # nothing quiet at the edges
    assert np.array_equal(trim_silence(speech[:100], 35.0), speech[:100])  # shorter than two frames
    # a deeper threshold keeps more of a fading edge
    fade = np.tile(speech, 5) * np.concatenate([np.linspace(0.001, 1, 64000), np.ones(16000)]).astype(np.float32)
    assert len(trim_silence(fade, 50.0)) > len(trim_silence(fade, 20.0))


def test_load_channels_keeps_each_channel_and_resamples_them_alike(tmp_path):
    """``--speakers channels`` reads each channel apart: at 16 kHz, their mean is the mono decode,
    and a file whose mix is silent is refused as load_audio refuses it."""
    from emovox.data.audio import load_channels

    rng = np.random.default_rng(0)
    left, right = (0.1 * rng.standard_normal(44100 * 3)).astype(np.float32), np.zeros(44100 * 3, np.float32)
    right[44100:] = 0.3 * np.sin(2 * np.pi * 220 * np.arange(44100 * 2) / 44100)
    path = tmp_path / "call.wav"
    sf.write(path, np.stack([left, right], 1), 44100, subtype="FLOAT")
    chans = load_channels(path)
    assert chans.shape == (2, 3 * 16000) and chans.dtype == np.float32
    assert np.abs(chans.mean(0) - load_audio(path)).max() < 1e-6
    assert np.abs(chans[1, : 16000 - 100]).max() < 1e-3 < np.abs(chans[0, : 16000 - 100]).max()  # nothing leaks across
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((16000, 2), np.float32), 16000)
    with pytest.raises(BadAudio, match="digital silence"):
        load_channels(silent)
