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
