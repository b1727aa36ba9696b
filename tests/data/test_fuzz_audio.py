"""Generated hostile audio (hypothesis): every file is accepted or named with a one-line reason,
within a time and memory bound; an accepted file decodes the same way twice; prepare, predict and
evaluate agree on which files are usable and finish the others."""
from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from emovox.data.audio import MIN_SECONDS, load_audio, read_info, stream_windows
from emovox.data.manifest import inspect_file
from emovox.errors import BadAudio
from emovox.hostile import CONTENTS, FORMATS, MUTATIONS, HostileSpec, make_hostile_corpus, write_hostile

MEMORY_BOUND = 256 * 2**20  # bytes numpy may allocate for one small file, whatever its header claims
TIME_BOUND = 20.0


@st.composite
def specs(draw) -> HostileSpec:
    container = draw(st.sampled_from(sorted(FORMATS)))
    rate = draw(st.one_of(st.integers(1, 1_000_000), st.sampled_from([8000, 16000, 44100, 48000])))
    if container == "ogg":
        rate = min(max(rate, 8000), 192_000)
    channels = draw(st.integers(1, 64))
    seconds = draw(st.floats(0.0, 1.5))
    seconds = min(seconds, 2e5 / (channels * rate))  # small files; lying headers do the claiming
    return HostileSpec(container=container, subtype=draw(st.sampled_from(FORMATS[container])), sample_rate=rate,
                       channels=channels, seconds=seconds, content=draw(st.sampled_from(CONTENTS)),
                       mutation=draw(st.sampled_from(MUTATIONS)), cut=draw(st.floats(0, 1)),
                       flips=tuple(draw(st.lists(st.floats(0, 1), min_size=1, max_size=6))),
                       value=draw(st.sampled_from([0, 1, 7, 65535, 2**31 - 1, 2**32 - 1, 10**9])),
                       seed=draw(st.integers(0, 2**16)))


def _check_one(path: Path) -> float | None:
    """Duration when accepted, None when refused; asserts the refusal is one line naming the file."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        duration, _ = inspect_file(str(path))
    except BadAudio as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}: ") and "\n" not in msg and len(msg) < 400, msg
        duration = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - started < TIME_BOUND
    assert peak < MEMORY_BOUND, f"{path}: {peak / 2**20:.0f} MB allocated"
    return duration


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=specs())
def test_every_generated_file_is_accepted_or_named(tmp_path_factory, spec):
    path = write_hostile(tmp_path_factory.mktemp("fz") / f"x.{spec.container}", spec)
    duration = _check_one(path)
    if duration is None:
        with pytest.raises(BadAudio):  # what prepare refuses, predict refuses too
            load_audio(path, max_seconds=None)
            if read_info(path).duration > 10:
                list(stream_windows(path, window_seconds=10, hop_seconds=5))
        return
    assert duration >= MIN_SECONDS
    a, b = load_audio(path), load_audio(path)
    assert a.dtype == np.float32 and np.isfinite(a).all() and np.array_equal(a, b)


@pytest.mark.parametrize("channels,spike,expect_refused", [
    (3, 2e-5, True),    # one channel above the silence peak, the mixdown (what models see) below it
    (1, 2e-5, False),   # the same spike alone is audible enough
    (2, None, True),    # two channels that cancel: silent once mixed down
])
def test_prepare_and_load_judge_silence_on_the_same_mixdown(tmp_path, channels, spike, expect_refused):
    """What prepare (inspect_file) accepts, load_audio (train, predict, serve) accepts too, and the
    reverse: both check the channel mixdown at the file's own rate (a hypothesis-found case: a
    3-channel 7999 Hz file with one flipped bit passed prepare and was refused at load)."""
    import soundfile as sf

    sr = 7999
    data = np.zeros((sr // 2, channels), np.float32)
    if spike is None:
        tone = 0.1 * np.sin(np.arange(sr // 2) / 10.0).astype(np.float32)
        data[:, 0], data[:, 1] = tone, -tone
    else:
        data[sr // 4, 0] = spike
    path = tmp_path / "x.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    refused_by_prepare = _check_one(path) is None
    try:
        load_audio(path)
        refused_at_load = False
    except BadAudio as exc:
        assert "digital silence" in str(exc)
        refused_at_load = True
    assert refused_by_prepare == refused_at_load == expect_refused


@pytest.mark.parametrize("container,mutation,channels", [
    ("wav", "frames", 64), ("wav", "frames", 2), ("flac", "frames", 1), ("wav", "channels", 1), ("wav", "rate", 1)])
def test_a_lying_header_allocates_nothing_it_claims(tmp_path, container, mutation, channels):
    for value in (0, 10**9, 2**32 - 1):
        spec = HostileSpec(container=container, subtype="PCM_16", channels=channels, seconds=0.3, mutation=mutation,
                           value=value)
        path = write_hostile(tmp_path / f"{value}.{container}", spec)
        duration = _check_one(path)
        # refused, or (libsndfile trusting the file size over the header) accepted at its true length
        assert duration is None or (value and duration == pytest.approx(0.3, abs=1e-3)), (value, duration)


def test_a_stream_of_unknown_length_is_named(tmp_path):
    path = write_hostile(tmp_path / "s.flac", HostileSpec(container="flac", seconds=0.4, mutation="frames", value=0))
    with pytest.raises(BadAudio, match="does not give the length"):
        inspect_file(str(path))


@pytest.mark.parametrize("spec,reason", [
    (HostileSpec(content="one_sample"), "too short: 0.0001 s (1 samples at 16000 Hz); the shortest clip accepted is 0.1 s"),
    (HostileSpec(seconds=0.05), "too short: 0.0500 s"),
    (HostileSpec(sample_rate=1, seconds=3), "sample rate 1 Hz; 4000 to 384000 Hz"),
    (HostileSpec(sample_rate=1_000_000, seconds=0.2), "sample rate 1000000 Hz"),
    (HostileSpec(channels=33, seconds=0.2), "33 channels; 1 to 32"),
    (HostileSpec(subtype="FLOAT", content="nan"), "NaN or infinite"),
    (HostileSpec(subtype="DOUBLE", content="inf"), "NaN or infinite"),
    (HostileSpec(subtype="FLOAT", content="denormal"), "digital silence"),
    (HostileSpec(content="empty"), "zero samples"),
    (HostileSpec(mutation="zero_data"), "zero samples"),
])
def test_reasons_say_what_and_the_limit(tmp_path, spec, reason):
    path = write_hostile(tmp_path / "x.wav", spec)
    with pytest.raises(BadAudio, match=reason.replace("(", r"\(").replace(")", r"\)")):
        inspect_file(str(path))
    with pytest.raises(BadAudio, match=reason.split(":")[0].split(";")[0]):
        load_audio(path)


@pytest.mark.parametrize("content", ["dc", "clipped", "tone"])
def test_odd_but_valid_audio_is_accepted(tmp_path, content):
    for subtype in ("PCM_U8", "PCM_24", "PCM_32", "ALAW", "ULAW", "DOUBLE"):
        path = write_hostile(tmp_path / f"{subtype}.wav", HostileSpec(subtype=subtype, content=content, channels=3,
                                                                      sample_rate=22050, seconds=0.3))
        assert inspect_file(str(path))[0] == pytest.approx(0.3, abs=1e-3)


def test_prepare_predict_and_evaluate_agree_on_hostile_files(tmp_path, capsys):
    from emovox.cli import main

    corpus = tmp_path / "corpus"
    make_hostile_corpus(corpus, n=48, seed=3)
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    assert main(["prepare", "--corpus", "folders", "--root", str(corpus), "--out", str(tmp_path / "prep"),
                 "--drop-invalid", "--workers", "1"]) == 0
    kept = set(pd.read_csv(tmp_path / "prep" / "manifest.csv")["path"])
    invalid = pd.read_csv(tmp_path / "prep" / "invalid.csv")
    assert kept.isdisjoint(invalid["path"]) and kept | set(invalid["path"]) == set(files)
    assert invalid["reason"].str.len().gt(0).all() and kept
    model = tmp_path / "model"
    assert main(["init-model", "--size", "tiny", "--scheme", "calm,tense", "--out", str(model)]) == 0
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(model), str(corpus), "--out", str(out)]) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == files
    assert {r["path"] for r in rows if "label" in r} == kept
    everything = tmp_path / "all.csv"
    pd.DataFrame({"path": files, "label": ["calm" if "/calm/" in f else "tense" for f in files],
                  "split": "test"}).to_csv(everything, index=False)
    assert main(["evaluate", str(model), "--manifest", str(everything), "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == len(kept) and metrics["n_errors"] == len(files) - len(kept)
    assert "Traceback" not in capsys.readouterr().err
