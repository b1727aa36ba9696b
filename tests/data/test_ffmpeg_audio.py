"""Containers libsndfile cannot read (AAC in M4A/MP4, Opus in WebM, Matroska), decoded through
FFmpeg (PyAV, the ``formats`` extra): the same waves, windows, checks and one-line errors as WAV."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from emovox.data import audio as A
from emovox.data import ffmpeg_decode
from emovox.errors import BadAudio

av = pytest.importorskip("av", reason="the formats extra (PyAV) is part of make install")
SR = 16_000


def source(seconds: float, seed: int = 0) -> np.ndarray:
    """A voice-like harmonic sound whose pitch wanders (no period, so an offset shows) under a
    syllable-rate envelope; perceptual codecs keep such a waveform, unlike white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 15 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t + rng.uniform(0, 6))
    return (0.15 * voice * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def encode(path, wave: np.ndarray, fmt: str, codec: str, rate: int, layout: str = "mono"):
    """``wave`` (16 kHz) written by FFmpeg as ``codec`` in a ``fmt`` container at ``rate``."""
    planes = wave[None] if layout == "mono" else np.stack([wave, 0.5 * wave])
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
        frame.sample_rate = SR
        convert = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
        for piece in [*convert.resample(frame), *convert.resample(None)]:
            for packet in stream.encode(piece):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def aligned_error(decoded: np.ndarray, original: np.ndarray) -> tuple[int, float]:
    """The lag (encoder priming) that best lines ``decoded`` up with ``original`` and the relative
    RMS error there."""
    n = min(len(original), len(decoded)) - 4000
    lags = range(0, 3000)
    errs = [np.sqrt(np.mean((decoded[k:k + n] - original[:n]) ** 2)) for k in lags]
    k = int(np.argmin(errs))
    return k, float(errs[k] / np.sqrt(np.mean(original[:n] ** 2)))


CASES = [("m4a", "mp4", "aac", 44_100, "stereo"), ("webm", "webm", "libopus", 48_000, "mono"),
         ("mkv", "matroska", "aac", 16_000, "mono")]


@pytest.mark.parametrize("suffix,fmt,codec,rate,layout", CASES)
def test_decoded_like_the_source(tmp_path, suffix, fmt, codec, rate, layout):
    wave = source(6.0)
    path = encode(tmp_path / f"clip.{suffix}", wave, fmt, codec, rate, layout)
    info = A.read_info(path)
    assert info.ffmpeg and info.sample_rate == rate and info.channels == (2 if layout == "stereo" else 1)
    assert info.duration == pytest.approx(6.0, abs=0.15)
    got = A.load_audio(path)  # 16 kHz mono, channels averaged
    lag, err = aligned_error(got, wave * (0.75 if layout == "stereo" else 1.0))
    assert lag < 0.1 * SR and err < 0.35  # lossy, but the same signal (unrelated noise: error ~1.4)
    assert A.scan_audio(path).duration == pytest.approx(info.duration, abs=0.15)  # the header's is an estimate
    head = A.load_audio(path, max_seconds=2.0)  # only the needed frames (the resampler's tail aside)
    assert len(head) == 2 * SR and np.allclose(head[: SR], got[: SR], atol=1e-5)


@pytest.mark.parametrize("suffix,fmt,codec,rate", [("m4a", "mp4", "aac", 16_000), ("webm", "webm", "libopus", 48_000)])
def test_streamed_windows_equal_slices_of_the_whole_decode(tmp_path, suffix, fmt, codec, rate):
    """Windows past the first second seek, then decode forward to the exact sample: the same
    samples as one decode from the start, so long recordings cost a window per window."""
    path = encode(tmp_path / f"long.{suffix}", source(25.0, seed=1), fmt, codec, rate)
    info = A.read_info(path)
    whole = np.concatenate(list(A.read_blocks(path, info)))[:, 0]
    for start in (3 * rate + 17, 15 * rate + 3):
        part = np.concatenate(list(A.read_blocks(path, info, frames=4 * rate, start=start)))[:, 0]
        assert len(part) == 4 * rate
        assert np.array_equal(part, whole[start:start + 4 * rate])
    windows = list(A.stream_windows(path, window_seconds=10, hop_seconds=5))
    assert [round(s, 3) for s, _ in windows][:3] == [0.0, 5.0, 10.0]
    assert all(len(w) == 10 * SR for _, w in windows[:-1]) and len(windows[-1][1]) > 9.5 * SR


def test_bytes_decode_like_files(tmp_path):
    path = encode(tmp_path / "up.m4a", source(3.0, seed=2), "mp4", "aac", 16_000)
    assert np.allclose(A.decode_bytes(path.read_bytes(), where="up.m4a"), A.load_audio(path), atol=1e-6)


def test_folders_find_them_and_bad_ones_are_named(tmp_path):
    good = encode(tmp_path / "call.m4a", source(2.0), "mp4", "aac", 16_000)
    bad = tmp_path / "broken.m4a"
    bad.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 4)
    assert A.is_audio_file(good) and A.is_audio_file(tmp_path / "x.webm")
    with pytest.raises(BadAudio) as e:
        A.load_audio(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: not readable as audio") and "FFmpeg" in msg and "\n" not in msg
    wav = tmp_path / "truncated.wav"  # a damaged WAV stays invalid: FFmpeg would decode what it can
    A.write_audio(wav, source(1.0))
    wav.write_bytes(wav.read_bytes()[:30])
    with pytest.raises(BadAudio) as e:
        A.load_audio(wav)
    assert "not readable as audio" in str(e.value) and "FFmpeg" not in str(e.value)
    with pytest.raises(BadAudio, match="not readable as audio"):
        A.decode_bytes(wav.read_bytes(), where="upload.wav")
    silent = encode(tmp_path / "silent.webm", np.zeros(SR, np.float32), "webm", "libopus", 48_000)
    with pytest.raises(BadAudio, match="digital silence"):
        A.load_audio(silent)


def test_without_pyav_the_error_says_how_to_install(tmp_path, monkeypatch):
    path = encode(tmp_path / "call.m4a", source(1.0), "mp4", "aac", 16_000)
    wav = tmp_path / "text.wav"
    wav.write_text("not audio")
    monkeypatch.setattr(ffmpeg_decode, "available", lambda: False)
    with pytest.raises(BadAudio) as e:
        A.read_info(path)
    assert str(e.value) == f"{path}: needs FFmpeg to decode .m4a: {ffmpeg_decode.INSTALL_HINT}"
    with pytest.raises(BadAudio, match="not readable as audio") as e:
        A.read_info(wav)
    assert "FFmpeg" not in str(e.value)  # a broken WAV is not an FFmpeg matter
    with pytest.raises(BadAudio, match="pip install 'emovox\\[formats\\]'"):
        A.decode_bytes(path.read_bytes(), where="upload")


def test_predict_scores_an_m4a_as_its_wav(tiny_run, tmp_path):
    """The command reads a phone's M4A beside WAVs: one row each, the bad file named, exit code 1."""
    wave = source(2.5, seed=3)
    A.write_audio(tmp_path / "a.wav", wave)
    encode(tmp_path / "a.m4a", wave, "mp4", "aac", 16_000)
    (tmp_path / "b.m4a").write_bytes(b"garbage")
    proc = subprocess.run([sys.executable, "-m", "emovox", "predict", str(tiny_run), str(tmp_path), "--top-k", "6"],
                          capture_output=True, text=True, timeout=300)
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert proc.returncode == 1 and set(rows) == {"a.wav", "a.m4a", "b.m4a"}
    assert "not readable as audio" in rows["b.m4a"]["error"]
    ref = {t["label"]: t["score"] for t in rows["a.wav"]["top_k"]}
    got = {t["label"]: t["score"] for t in rows["a.m4a"]["top_k"]}
    assert got.keys() == ref.keys() and max(abs(got[k] - ref[k]) for k in ref) < 0.05


def test_serve_scores_an_m4a_upload_and_names_it_without_pyav(tiny_run, tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    from fastapi.testclient import TestClient

    from emovox.inference.predict import Predictor
    from emovox.inference.serve_app import create_app
    from emovox.inference.serve_io import ServeSettings

    path = encode(tmp_path / "phone.m4a", source(2.0, seed=4), "mp4", "aac", 16_000)
    predictor = Predictor.from_run_dir(tiny_run)
    (tmp_path / "up").mkdir()
    with TestClient(create_app(lambda: predictor, ServeSettings(tmp_dir=str(tmp_path / "up")))) as client:
        assert client.app.state.emovox.loaded.wait(60)
        ok = client.post("/v1/predict/raw?filename=phone.m4a", content=path.read_bytes(),
                         headers={"Content-Type": "audio/mp4"})
        assert ok.status_code == 200 and ok.json()["label"] == next(predictor.predict_files([path]))["label"]
        monkeypatch.setattr(ffmpeg_decode, "available", lambda: False)
        refused = client.post("/v1/predict", files=[("file", ("phone.m4a", path.read_bytes(), "audio/mp4"))])
        assert refused.status_code == 415 and "pip install 'emovox[formats]'" in refused.json()["error"]


@pytest.mark.parametrize("suffix,fmt,codec,rate", [("m4a", "mp4", "aac", 16_000), ("webm", "webm", "libopus", 48_000)])
def test_damaged_containers_are_named_never_a_traceback(tmp_path, suffix, fmt, codec, rate):
    """Truncated, bit-flipped and garbage-bodied files: each either decodes (FFmpeg conceals some
    damage) or is refused with one line naming it; nothing else escapes."""
    good = encode(tmp_path / f"good.{suffix}", source(4.0, seed=5), fmt, codec, rate).read_bytes()
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(24):
        data = bytearray(good)
        if i % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        elif i % 3 == 1:
            for pos in rng.integers(0, len(data), int(rng.integers(1, 20))):
                data[pos] ^= 0xFF
        else:
            data[16:] = rng.integers(0, 256, len(data) - 16, dtype=np.uint8).tobytes()
        path = tmp_path / f"bad{i}.{suffix}"
        path.write_bytes(bytes(data))
        try:
            A.scan_audio(path)
            list(A.stream_windows(path, window_seconds=2, hop_seconds=1))
            outcomes.add("decoded")
        except BadAudio as exc:
            msg = str(exc)
            assert msg.startswith(f"{path}: ") and "\n" not in msg and "Traceback" not in msg
            outcomes.add("named")
    assert "named" in outcomes
