"""Helpers that make short clips, tiny corpora, broken files and tiny models for tests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from .data.audio import SAMPLE_RATE, write_audio


def test_data_dir() -> Path | None:
    """``EMOVOX_TEST_DATA`` (default ``../shared/data`` beside the project), or None when absent."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    path = Path(os.environ.get("EMOVOX_TEST_DATA", default))
    return path if (path / "ravdess16k").is_dir() else None


def tone(seconds: float, *, freq: float = 220.0, sr: int = SAMPLE_RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A harmonic tone with a little noise: (n,) or (n, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 5)) * 0.2
    wave = (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave * (0.5 + 0.5 * c) for c in range(channels)], axis=1)


def write_tone(path: str | Path, seconds: float = 1.0, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr = kwargs.get("sr", SAMPLE_RATE)
    sf.write(str(path), tone(seconds, **kwargs), sr, subtype="PCM_16")
    return path


def make_crema_corpus(root: str | Path, *, actors: Iterable[int] = range(1001, 1007),
                      emotions: Iterable[str] = ("ANG", "HAP", "NEU", "SAD"), seconds: float = 0.6) -> list[Path]:
    """A small CREMA-D-named corpus of distinct tones (pitch per emotion, so it is learnable)."""
    root = Path(root)
    pitch = {"ANG": 300.0, "HAP": 260.0, "NEU": 180.0, "SAD": 140.0, "DIS": 200.0, "FEA": 330.0}
    out = []
    for a in actors:
        for k, emo in enumerate(emotions):
            for j, sentence in enumerate(("DFA", "IEO")):
                path = root / f"{a}_{sentence}_{emo}_XX.wav"
                write_tone(path, seconds + 0.1 * j, freq=pitch[emo] * (1 + (a % 7) / 50), seed=a * 100 + k * 10 + j)
                out.append(path)
    return out


BROKEN_KINDS = ("corrupt", "empty", "text", "zero_samples", "nan", "silence", "unknown_code", "unparseable")


def make_broken_files(root: str | Path) -> dict[str, Path]:
    """One file of each kind ``prepare`` must reject, named like CREMA-D clips where that matters."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = {k: root / name for k, name in {
        "corrupt": "1090_DFA_ANG_XX.wav", "empty": "1090_DFA_HAP_XX.wav", "text": "1090_DFA_SAD_XX.wav",
        "zero_samples": "1090_DFA_NEU_XX.wav", "nan": "1090_IEO_ANG_HI.wav", "silence": "1090_IEO_HAP_LO.wav",
        "unknown_code": "1090_DFA_XYZ_XX.wav", "unparseable": "angry_take3.wav"}.items()}
    files["corrupt"].write_bytes(b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(64)))  # malformed header
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not audio, it is a text file named .wav\n")
    sf.write(str(files["zero_samples"]), np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    nan = tone(0.5)
    nan[100:200] = np.nan
    sf.write(str(files["nan"]), nan, SAMPLE_RATE, subtype="FLOAT")
    write_audio(files["silence"], np.zeros(8000, dtype=np.float32))
    write_tone(files["unknown_code"], 0.5)
    write_tone(files["unparseable"], 0.5)
    (root / "README.txt").write_text("not audio; must be ignored\n")
    return files
