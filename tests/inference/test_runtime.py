"""The light runtime: an ONNX export scored without torch or transformers (numpy front ends, the
export's files read as JSON), as the runtime install (`pip install 'emovox[runtime]'`) runs it.

The runtime install is simulated by a child process whose import system refuses torch and
transformers: anything on the path that imports them fails the command."""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

from emovox.config import ModelConfig
from emovox.data.audio import load_audio
from emovox.inference.export import export_onnx
from emovox.inference.predict import Predictor
from emovox.labels import get_scheme
from emovox.models.backbones.front_end import MEL_FILTERS_FILE, WaveNormaliser, WhisperLogMel, front_end_for
from emovox.models.loading import load_model, save_trained
from emovox.models.presets import init_model
from emovox.testing import make_broken_files, save_tiny_whisper, tone, write_tone

from conftest import wait_for

SR = 16_000
# Run the CLI with torch and transformers refused, then say which heavy modules got imported.
NO_TORCH = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)  # as where it is not installed
sys.meta_path.insert(0, Refuse())
from emovox.cli import main
try:
    code = main(sys.argv[1:])
finally:
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "pandas", "sklearn", "scipy"})
    sys.stderr.write("HEAVY " + json.dumps(heavy) + "\\n")
sys.exit(code)
"""


def _runtime(tmp_path: Path, *args: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    script = tmp_path / "no_torch.py"
    script.write_text(NO_TORCH)
    cmd = [sys.executable, str(script), *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, **popen)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _heavy(stderr: str) -> list[str]:
    return json.loads(re.search(r"HEAVY (.*)", stderr).group(1))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emovox.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _assert_same_rows(got: list[dict], ref: list[dict], tol: float = 1e-4) -> None:
    assert [r["path"] for r in got] == [r["path"] for r in ref]
    for g, r in zip(got, ref):
        assert ("error" in g) == ("error" in r)
        if "error" in r:
            assert g["error"] == r["error"]
            continue
        assert g["label"] == r["label"]
        assert abs(g["score"] - r["score"]) < tol
        assert [t["label"] for t in g["top_k"]] == [t["label"] for t in r["top_k"]]


# -- front ends --------------------------------------------------------------------------------
def _waves(real_clips: list[Path]) -> list[np.ndarray]:
    generated = [tone(1.3, freq=180, seed=1), tone(2.71, freq=260, seed=2) * 0.01,
                 np.random.default_rng(0).standard_normal(SR // 2).astype(np.float32) * 0.2]
    return generated + [load_audio(p) for p in real_clips]


@pytest.fixture(scope="module")
def real_clips() -> list[Path]:
    from emovox.testing import test_data_dir

    root = test_data_dir()
    return sorted((root / "ravdess16k").rglob("*.flac"))[:60:12] if root else []


def _exact_log_mel(wave: np.ndarray, fe: WhisperFeatureExtractor) -> np.ndarray:
    """Whisper's log-mel in float64 with an explicit DFT matrix (no FFT library): the reference."""
    x = np.pad(wave.astype(np.float64), fe.n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, fe.n_fft)[:: fe.hop_length][:-1]
    k = np.arange(fe.n_fft // 2 + 1)[:, None] * np.arange(fe.n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k / fe.n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fe.n_fft) / fe.n_fft)  # periodic Hann
    power = np.abs((frames * window) @ dft.T) ** 2
    log = np.log10(np.maximum(power @ fe.mel_filters.astype(np.float64), 1e-10))
    return ((np.maximum(log, log.max() - 8.0) + 4.0) / 4.0).T


def test_whisper_log_mel_equals_the_feature_extractor(real_clips):
    fe = WhisperFeatureExtractor(feature_size=80)
    mine = WhisperLogMel(fe.to_dict(), fe.mel_filters, torch.hann_window(fe.n_fft, dtype=torch.float64).numpy())
    for wave in _waves(real_clips):
        n = len(wave) // fe.hop_length
        got = mine(wave, sampling_rate=SR)["input_features"][0]
        assert got.dtype == np.float32 and got.shape == (80, n)
        assert np.abs(got - _exact_log_mel(wave, fe)).max() < 1e-6
        # transformers' own paths round in float32 (its torch path, what the full install runs, is
        # 2.6e-5 from the exact values on RAVDESS, its numpy path 1.4e-5): equal within that
        torch_ref = fe(wave, sampling_rate=SR, return_tensors="np", padding="longest", truncation=False)
        assert np.abs(got[:, :n] - torch_ref["input_features"][0][:, :n]).max() < 5e-5
        numpy_ref = fe._np_extract_fbank_features(wave[None].astype(np.float32), "cpu")[0]
        assert np.abs(got[:, :n] - numpy_ref[:, :n]).max() < 5e-5


def test_wave_normaliser_equals_the_feature_extractor(real_clips):
    for normalize in (True, False):
        fe = Wav2Vec2FeatureExtractor(do_normalize=normalize, return_attention_mask=True)
        mine = WaveNormaliser(fe.to_dict())
        for wave in _waves(real_clips):
            ref = fe(wave, sampling_rate=SR)["input_values"][0]
            assert np.abs(mine(wave)["input_values"][0] - ref).max() < 1e-6


# -- exports -----------------------------------------------------------------------------------
def _whisper_run(root: Path) -> Path:
    """A tiny Whisper classifier run dir that trims silence and has a fitted temperature."""
    src = save_tiny_whisper(root / "encoder", d_model=64)
    scheme = get_scheme("crema-d-6")
    model, fe = load_model(str(src), scheme, ModelConfig(name=str(src), trim_silence_db=30), seed=1, max_seconds=3)
    with torch.no_grad():
        model.classifier.weight.mul_(60.0)  # logits of O(1), so a wrong front end would show
    run = root / "run"
    run.mkdir()
    save_trained(model, run)
    fe.save_pretrained(run)
    (run / "emovox.json").write_text(json.dumps({"scheme": scheme.to_dict(), "temperature": 1.7, "max_seconds": 3}))
    return run


@pytest.fixture(scope="module")
def whisper_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt_whisper")
    run = _whisper_run(root)
    res = export_onnx(run_dir=run, out=root / "onnx")
    assert res.max_logit_diff < 1e-3  # checked with the numpy front end on the ONNX side
    return run, root / "onnx"


@pytest.fixture(scope="module")
def clips(tmp_path_factory, real_clips):
    d = tmp_path_factory.mktemp("rt_clips")
    files = [write_tone(d / "a.wav", 1.2, freq=190, seed=1), write_tone(d / "b.flac", 2.4, freq=280, seed=2, sr=22050),
             write_tone(d / "long.wav", 13.0, freq=230, seed=3)]  # longer than the window: streamed
    broken = make_broken_files(d / "broken")
    return files + [broken["corrupt"], broken["silence"]] + list(real_clips[:3])


def test_export_carries_the_front_end(whisper_export):
    run, onnx = whisper_export
    assert (onnx / MEL_FILTERS_FILE).is_file()
    fe = front_end_for(onnx)
    assert isinstance(fe, WhisperLogMel) and fe.emovox_trim_silence_db == 30
    assert json.loads((onnx / "emovox.json").read_text())["temperature"] == 1.7


def test_runtime_predict_without_torch_equals_the_run_dir(whisper_export, clips, tmp_path):
    run, onnx = whisper_export
    ref = _cli("predict", run, *clips)
    got = _runtime(tmp_path, "predict", onnx, *clips)  # --backend auto: the export runs on onnxruntime
    assert got.returncode == ref.returncode == 1, got.stderr  # the broken files' error rows
    assert _heavy(got.stderr) == []
    _assert_same_rows(_rows(got.stdout), _rows(ref.stdout))
    assert sum("error" in r for r in _rows(got.stdout)) == 2


def test_runtime_predict_of_a_wav2vec2_export(tmp_path, clips):
    run = init_model(size="tiny", scheme=get_scheme("crema-d-6"), out=tmp_path / "run")
    export_onnx(run_dir=run, out=tmp_path / "onnx")
    good = clips[:2]
    ref = Predictor.from_run_dir(run, backend="torch")
    got = _runtime(tmp_path, "predict", tmp_path / "onnx", *good, "--top-k", "6")
    assert got.returncode == 0, got.stderr
    assert _heavy(got.stderr) == []
    _assert_same_rows(_rows(got.stdout), list(ref.predict_files(good, top_k=6)))


def test_runtime_errors_are_one_line(whisper_export, tmp_path):
    run, onnx = whisper_export
    old = tmp_path / "old"
    old.mkdir()
    for f in onnx.iterdir():
        if f.name != MEL_FILTERS_FILE:
            (old / f.name).write_bytes(f.read_bytes())
    clip = write_tone(tmp_path / "c.wav", 1.0)
    got = _runtime(tmp_path, "predict", old, clip)
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert "mel_filters.npy" in got.stderr and "emovox export" in got.stderr
    got = _runtime(tmp_path, "predict", run, clip)  # a torch run dir needs the training stack
    assert got.returncode == 2 and "Traceback" not in got.stderr and "emovox[train]" in got.stderr


@contextlib.contextmanager
def _runtime_server(tmp_path: Path, model: Path) -> Iterator[str]:
    """``emovox serve MODEL`` under the runtime (torch refused), ready; yields its URL."""
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    log_path = tmp_path / "server.log"
    with open(log_path, "w+") as log:
        proc = _runtime(tmp_path, "serve", model, "--port", "0", "--workers", "1", stdout=log,
                        stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            url = wait_for(lambda: (m := re.search(r"on (http://127\.0\.0\.1:\d+)", log_path.read_text())) and m[1],
                           60, proc)
            wait_for(lambda: _get(url + "/v1/ready")[0] == 200, 60, proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)
    assert "Traceback" not in log_path.read_text()


def test_runtime_serve_without_torch(whisper_export, clips, tmp_path):
    _, onnx = whisper_export
    with _runtime_server(tmp_path, onnx) as url:
        status, model = _get(url + "/v1/model")
        assert status == 200 and model["backend"] == "onnx" and model["labels"] == list(get_scheme("crema-d-6").labels)
        ref = list(Predictor.from_run_dir(onnx).predict_files(clips[:2]))
        for path, want in zip(clips[:2], ref):
            status, row = _post(url + "/v1/predict/raw", Path(path).read_bytes())
            assert status == 200 and row["label"] == want["label"] and abs(row["score"] - want["score"]) < 1e-5
        assert _post(url + "/v1/predict/raw", b"not audio at all")[0] == 415


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# -- conversations (--segment vad --speakers) ------------------------------------------------------
@pytest.fixture(scope="module")
def conversation_export(whisper_export, tmp_path_factory):
    """The tiny Whisper run exported with its speech detector and speaker encoder (``--conversation``)."""
    pytest.importorskip("silero_vad", reason="pip install --no-deps --require-hashes -r requirements/conversation.txt")
    pytest.importorskip("resemblyzer", reason="pip install --no-deps --require-hashes -r requirements/conversation.txt")
    from emovox.cli import main

    run, _ = whisper_export
    out = tmp_path_factory.mktemp("rt_conv") / "onnx"
    assert main(["export", str(run), "--out", str(out), "--conversation"]) in (0, None)
    assert sorted(p.name for p in (out / "conversation").iterdir()) == ["speaker_encoder.onnx", "speaker_mel_filters.npy",
                                                                        "vad.onnx"]
    return run, out


@pytest.fixture(scope="module")
def talk(real_data, tmp_path_factory) -> Path:
    """Eight real turns of two RAVDESS actors (a man and a woman), pauses of 0.5-1 s, low hiss."""
    from emovox.inference.assemble import alternate, write_conversation

    def takes(actor):
        files = sorted((real_data / "ravdess16k" / f"Actor_{actor}").glob("*.flac"))[::9][:4]
        return [{"path": f, "speaker": actor, "label": "?"} for f in files]

    path = tmp_path_factory.mktemp("rt_talk") / "talk.wav"
    write_conversation(path, alternate(takes("01"), takes("02"), 8), pauses=(0.5, 1.0), seed=0)
    return path


def _conversation_rows(model: Path, talk: Path) -> list[dict]:
    from emovox.inference.conversation import ConversationOptions, conversation_rows

    return list(conversation_rows(Predictor.from_run_dir(model), [str(talk)], options=ConversationOptions(speakers=2)))


def test_runtime_conversations_without_torch_equal_the_full_install(conversation_export, talk, tmp_path):
    run, onnx = conversation_export
    got = _runtime(tmp_path, "predict", onnx, talk, "--segment", "vad", "--speakers", "2", "--format", "jsonl")
    assert got.returncode == 0, got.stderr
    assert _heavy(got.stderr) == []  # no torch, transformers, scikit-learn, scipy or pandas on this path
    rows = _rows(got.stdout)
    segments = [r for r in rows if "summary" not in r]
    assert len(segments) >= 6 and {r["speaker"] for r in segments} == {"S1", "S2"}
    assert [r.get("summary") for r in rows[len(segments):]] == ["speaker", "speaker", "file"]
    full = _conversation_rows(onnx, talk)  # the full install on the same export: the same rows
    assert [(r.get("start"), r.get("end"), r.get("speaker"), r["label"]) for r in full] == \
        [(r.get("start"), r.get("end"), r.get("speaker"), r["label"]) for r in rows]
    torch_rows = _conversation_rows(run, talk)  # the run dir: Resemblyzer in torch, the package's detector
    assert [(r["start"], r["end"], r["speaker"]) for r in torch_rows if "summary" not in r] == \
        [(r["start"], r["end"], r["speaker"]) for r in segments]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(torch_rows, rows) if "summary" not in a)


def test_runtime_speakers_from_the_channels_of_a_call(conversation_export, real_data, tmp_path):
    """``--speakers channels`` without torch: each party on a channel of their own (the other leaking
    in 25 dB down) comes out as that channel's speaker, as the full install scores the same export."""
    import soundfile as sf

    from emovox.inference.assemble import alternate, assemble_conversation

    def takes(actor):
        files = sorted((real_data / "ravdess16k" / f"Actor_{actor}").glob("*.flac"))[::11][:3]
        return [{"path": f, "speaker": actor, "label": "?"} for f in files]

    wave, turns = assemble_conversation(alternate(takes("03"), takes("04"), 6), pauses=(0.5, 1.0), seed=2)
    own = np.zeros((2, len(wave)), np.float32)
    for t in turns:
        own[0 if t.speaker == "03" else 1, int(t.start * SR):int(t.end * SR)] = wave[int(t.start * SR):int(t.end * SR)]
    call = tmp_path / "call.wav"
    sf.write(call, (own + 10 ** (-25 / 20) * own[::-1]).T, SR, subtype="FLOAT")
    _, onnx = conversation_export
    got = _runtime(tmp_path, "predict", onnx, call, "--segment", "vad", "--speakers", "channels", "--format", "jsonl")
    assert got.returncode == 0, got.stderr
    assert _heavy(got.stderr) == []
    segments = [r for r in _rows(got.stdout) if "summary" not in r]
    for t in turns:  # each turn found once, on its own speaker's channel
        on = [r for r in segments if min(r["end"], t.end) - max(r["start"], t.start) > 0.5 * (t.end - t.start)]
        assert [r["speaker"] for r in on] == ["S1" if t.speaker == "03" else "S2"], (t, on)
    from emovox.inference.conversation import ConversationOptions, conversation_rows

    full = [r for r in conversation_rows(Predictor.from_run_dir(onnx), [str(call)],
                                         options=ConversationOptions(speakers="channels")) if "summary" not in r]
    assert [(r["start"], r["end"], r["speaker"], r["label"]) for r in full] == \
        [(r["start"], r["end"], r["speaker"], r["label"]) for r in segments]


def test_runtime_conversation_needs_the_bundle_for_speakers(whisper_export, talk, tmp_path):
    _, onnx = whisper_export  # exported without --conversation
    got = _runtime(tmp_path, "predict", onnx, talk, "--segment", "vad", "--speakers", "2")
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert len(got.stderr.strip().splitlines()) <= 2 and "--conversation" in got.stderr


def test_runtime_serve_segments_and_speakers(conversation_export, talk, tmp_path):
    _, onnx = conversation_export
    want = [r for r in _conversation_rows(onnx, talk) if "summary" not in r]
    with _runtime_server(tmp_path, onnx) as url:
        status, got = _post(url + "/v1/predict/raw?segments=vad&speakers=2", talk.read_bytes())
    assert status == 200, got
    assert [(s["start"], s["end"], s["speaker"], s["label"]) for s in got["segments"]] == \
        [(r["start"], r["end"], r["speaker"], r["label"]) for r in want]
    assert {s["speaker"] for s in got["speakers"]} == {"S1", "S2"}
