"""The synthetic CREMA-D shaped corpus: layout, determinism, well-formed audio, learnability."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emovox.data.audio import SAMPLE_RATE, load_audio
from emovox.data.synthetic import (
    CREMA_SENTENCES,
    clip_rng,
    clip_specs,
    make_demo_corpus,
    speaker_voice,
    synthesize_clip,
)
from emovox.errors import BadConfig, BadLabel
from emovox.labels import CREMA_EMOTIONS

CREMA_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(XX|LO|MD|HI)\.wav$")
SMALL = ("IEO", "DFA")  # the intensity sentence and one ordinary sentence
NON_NEUTRAL = [e for e in CREMA_EMOTIONS if e != "NEU"]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("small")
    return out, make_demo_corpus(out=out, speakers=2, seed=0, sentences=SMALL, workers=1)


def _parse(path: Path) -> tuple[str, str, str, str]:
    m = CREMA_NAME.match(path.name)
    assert m, f"not a CREMA-D name: {path.name}"
    return m.group(1), m.group(2), m.group(3), m.group(4)


def _bytes(paths: list[Path]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


def test_file_count_and_crema_names(small_corpus: tuple[Path, list[Path]]) -> None:
    out, paths = small_corpus
    # per actor: 2 sentences x 6 emotions at XX, plus IEO x 5 emotions x LO/MD/HI
    assert len(paths) == 2 * (2 * 6 + 5 * 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # flat, nothing else
    assert len(set(paths)) == len(paths)
    parsed = [_parse(p) for p in paths]
    assert {a for a, *_ in parsed} == {"1001", "1002"}
    assert {s for _, s, *_ in parsed} == set(SMALL)
    assert "1001_DFA_ANG_XX.wav" in {p.name for p in paths}
    info = sf.info(str(paths[0]))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")


def test_full_layout_is_87_clips_per_actor() -> None:
    specs = clip_specs(CREMA_SENTENCES)
    assert len(specs) == 12 * 6 + 5 * 3 == 87
    assert len(set(specs)) == 87
    assert {(s, e) for s, e, i in specs if i == "XX"} == {(s, e) for s in CREMA_SENTENCES for e in CREMA_EMOTIONS}


def test_intensities_other_than_xx_only_in_ieo(small_corpus: tuple[Path, list[Path]]) -> None:
    _, paths = small_corpus
    parsed = [_parse(p) for p in paths]
    graded = {(a, s, e, i) for a, s, e, i in parsed if i != "XX"}
    assert {s for _, s, _, _ in graded} == {"IEO"}
    assert all(i == "XX" for _, _, e, i in parsed if e == "NEU")
    for actor in ("1001", "1002"):
        assert {(e, i) for a, _, e, i in graded if a == actor} == {
            (e, i) for e in NON_NEUTRAL for i in ("LO", "MD", "HI")}
    assert all(i == "XX" for _, s, _, i in (_parse(p) for p in paths) if s != "IEO")


def test_same_seed_same_bytes_other_seed_other_bytes(
    small_corpus: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, paths = small_corpus
    again = make_demo_corpus(out=tmp_path / "again", speakers=2, seed=0, sentences=SMALL, workers=1)
    assert _bytes(again) == _bytes(paths)
    other = _bytes(make_demo_corpus(out=tmp_path / "other", speakers=1, seed=1, sentences=["DFA"], workers=1))
    first = _bytes(paths)
    assert all(other[name] != first[name] for name in other)
    assert speaker_voice(seed=0, index=3) == speaker_voice(seed=0, index=3)
    assert speaker_voice(seed=0, index=3) != speaker_voice(seed=1, index=3)


def test_worker_count_and_speaker_count_do_not_change_clips(
    small_corpus: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, paths = small_corpus
    parallel = make_demo_corpus(out=tmp_path / "par", speakers=2, seed=0, sentences=SMALL, workers=2)
    assert [p.name for p in parallel] == [p.name for p in paths]
    assert _bytes(parallel) == _bytes(paths)
    more = _bytes(make_demo_corpus(out=tmp_path / "more", speakers=3, seed=0, sentences=["DFA"], workers=2))
    first = _bytes(paths)
    shared = [name for name in more if not name.startswith("1003")]
    assert shared and all(more[name] == first[name] for name in shared)


def test_waves_well_formed(small_corpus: tuple[Path, list[Path]]) -> None:
    _, paths = small_corpus
    durations = []
    for path in paths:
        wave = load_audio(path)  # raises on NaN, silence, zero samples
        durations.append(wave.size / SAMPLE_RATE)
        assert 0.29 <= np.abs(wave).max() <= 0.91
    assert 1.2 <= min(durations) and max(durations) <= 5.0
    assert 1.8 <= float(np.mean(durations)) <= 3.2


@pytest.mark.parametrize(("emotion", "intensity", "sentence"), [
    ("SAD", "HI", "ITH"),  # slowest emotion on the longest sentence
    ("ANG", "HI", "TSI"),  # fastest and loudest on the shortest
    ("FEA", "LO", "IEO"),
    ("NEU", "XX", "WSI"),
])
def test_synthesize_clip_extremes(emotion: str, intensity: str, sentence: str) -> None:
    for index in range(4):
        voice = speaker_voice(seed=5, index=index)
        rng = clip_rng(seed=5, actor=voice.actor, sentence=sentence, emotion=emotion, intensity=intensity)
        wave = synthesize_clip(emotion=emotion, intensity=intensity, speaker=voice, sentence=sentence, rng=rng)
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert np.isfinite(wave).all()
        assert 1.2 <= wave.size / SAMPLE_RATE <= 5.0
        assert 0.3 - 1e-6 <= np.abs(wave).max() <= 0.9 + 1e-6


def test_emotions_move_prosody_in_the_intended_direction() -> None:
    voice = speaker_voice(seed=0, index=0)

    def mean_of(emotion: str) -> tuple[float, float]:
        waves = [synthesize_clip(emotion=emotion, intensity="HI", speaker=voice, sentence="IEO",
                                 rng=np.random.default_rng(k)) for k in range(6)]
        return (float(np.mean([w.size for w in waves])), float(np.mean([_features(w)[6] for w in waves])))

    (ang_len, ang_f0), (sad_len, sad_f0) = mean_of("ANG"), mean_of("SAD")
    assert sad_len > 1.2 * ang_len  # sad is slow, angry fast
    assert ang_f0 > sad_f0 + 3.0  # at least 3 semitones higher


def test_bad_arguments_raise_emovox_errors(tmp_path: Path) -> None:
    with pytest.raises(BadLabel, match="XYZ"):
        make_demo_corpus(out=tmp_path, speakers=1, sentences=["XYZ"])
    with pytest.raises(BadConfig, match="speakers"):
        make_demo_corpus(out=tmp_path, speakers=0)
    with pytest.raises(BadConfig, match="workers"):
        make_demo_corpus(out=tmp_path, speakers=1, workers=0)
    with pytest.raises(BadConfig, match="seed"):
        make_demo_corpus(out=tmp_path, speakers=1, seed=-1)
    with pytest.raises(BadLabel, match="SURPRISE"):
        synthesize_clip(emotion="SURPRISE", intensity="XX", speaker=speaker_voice(seed=0, index=0),
                        sentence="DFA", rng=np.random.default_rng(0))
    assert not list(tmp_path.iterdir())


def _features(wave: np.ndarray) -> list[float]:
    """Duration, level, tilt and an autocorrelation F0 proxy over the loud frames."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, 640)[::320] * np.hanning(640)
    power = np.abs(np.fft.rfft(frames, 1024)) ** 2
    energy = 10 * np.log10(power.sum(1) + 1e-10)
    loud = energy > energy.max() - 30
    freqs = np.fft.rfftfreq(1024, 1 / SAMPLE_RATE)
    high = np.log10(power[loud][:, freqs > 1000].sum(1) / power[loud][:, freqs <= 1000].sum(1))
    centroid = (power[loud] * freqs).sum(1) / power[loud].sum(1)
    lag = np.fft.irfft(power[loud], 1024)[:, 32:267].argmax(1) + 32  # 60-500 Hz
    semitones = 12 * np.log2(SAMPLE_RATE / lag)
    return [wave.size / SAMPLE_RATE, loud.mean(), energy[loud].mean(), energy[loud].std(),
            np.median(centroid), np.median(high), float(np.median(semitones)),
            np.percentile(semitones, 90) - np.percentile(semitones, 10)]


def _accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x[train], y[train])
    return float((model.predict(x[~train]) == y[~train]).mean())


def test_emotion_is_learnable_across_speakers_and_harder_for_intensity(tmp_path: Path) -> None:
    paths = make_demo_corpus(out=tmp_path, speakers=8, seed=0, sentences=SMALL, workers=2)
    rows = [_parse(p) for p in paths]
    x = np.array([_features(load_audio(p)) for p in paths])
    actor = np.array([int(a) for a, *_ in rows])
    emotion = np.array([e for _, _, e, _ in rows])
    intensity = np.array([i for *_, i in rows])
    train = actor <= 1005  # speaker-disjoint: 5 actors train, 3 test
    emotion_acc = _accuracy(x, emotion, train)
    graded = intensity != "XX"
    intensity_acc = _accuracy(x[graded], intensity[graded], train[graded])
    assert 0.4 <= emotion_acc <= 0.95, emotion_acc  # clearly above chance (1/6), not trivial
    emotion_gain = (emotion_acc - 1 / 6) / (1 - 1 / 6)
    intensity_gain = (intensity_acc - 1 / 3) / (1 - 1 / 3)
    assert intensity_gain < emotion_gain, (emotion_acc, intensity_acc)
