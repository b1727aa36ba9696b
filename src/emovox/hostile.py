"""Hostile audio for robustness tests and the acceptance run (``python -m benchmarks.hostile``).

:func:`write_hostile` writes one file from a :class:`HostileSpec` (container, subtype, rate,
channels, content, then a mutation: truncation, flipped bytes, a lying header field); the
property tests draw specs with hypothesis, :func:`make_hostile_corpus` draws a few hundred
with a seeded generator and lays them out as a ``--corpus folders`` tree.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {  # container -> subtypes libsndfile writes in it
    "wav": ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ALAW", "ULAW"),
    "flac": ("PCM_S8", "PCM_16", "PCM_24"),
    "ogg": ("VORBIS",),
}
CONTENTS = ("tone", "noise", "dc", "clipped", "silence", "denormal", "nan", "inf", "one_sample", "empty")
MUTATIONS = ("none", "truncate", "flip", "flip_header", "frames", "channels", "rate", "zero_data", "garbage")


@dataclass(frozen=True)
class HostileSpec:
    """One hostile file. ``cut`` and ``flips`` are fractions of the file's length (0-1)."""

    container: str = "wav"
    subtype: str = "PCM_16"
    sample_rate: int = 16_000
    channels: int = 1
    seconds: float = 0.5
    content: str = "tone"
    mutation: str = "none"
    cut: float = 0.5
    flips: tuple[float, ...] = field(default=(0.1,))
    value: int = 1_000_000_000  # what a lying header field claims
    seed: int = 0


def _content(spec: HostileSpec, frames: int) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    t = np.arange(frames)[:, None] / max(spec.sample_rate, 1)
    kind = spec.content
    if kind == "tone":
        x = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal((frames, 1))
    elif kind == "noise":
        x = rng.uniform(-1, 1, (frames, 1))
    elif kind == "dc":
        x = np.full((frames, 1), 0.5)
    elif kind == "clipped":
        x = np.clip(3.0 * np.sin(2 * np.pi * 110.0 * t), -1.0, 1.0)
    elif kind == "denormal":
        x = np.full((frames, 1), 1e-40)
    else:  # silence, and the NaN/inf carriers
        x = np.zeros((frames, 1))
    x = np.repeat(x, spec.channels, axis=1).astype(np.float64)
    if kind in ("nan", "inf") and frames:
        x[:] = 0.2
        x[rng.integers(0, frames, max(1, frames // 50)), 0] = np.nan if kind == "nan" else np.inf
    return x


def write_clean(path: Path, spec: HostileSpec) -> Path:
    """The valid file the mutation starts from (libsndfile's own writer)."""
    frames = {"one_sample": 1, "empty": 0}.get(spec.content, max(0, int(round(spec.seconds * spec.sample_rate))))
    fmt = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[spec.container]
    try:
        sf.write(str(path), _content(spec, frames), spec.sample_rate, subtype=spec.subtype, format=fmt)
    except Exception:  # a combination libsndfile refuses to write (FLAC over 8 channels, ...): a WAV then
        path.unlink(missing_ok=True)
        sf.write(str(path), _content(spec, frames), spec.sample_rate, subtype="PCM_16", format="WAV")
    return path


def _riff_field(data: bytearray, name: str, value: int) -> None:
    """Overwrite a WAV header field (fmt chunk at 12; the layout libsndfile writes)."""
    i = data.find(b"fmt ")
    if i < 0:
        return
    if name == "channels":
        data[i + 10:i + 12] = struct.pack("<H", value & 0xFFFF)
    elif name == "rate":
        data[i + 12:i + 16] = struct.pack("<I", value & 0xFFFFFFFF)
    elif name == "frames":
        j = data.find(b"data")
        if j >= 0:
            data[j + 4:j + 8] = struct.pack("<I", value & 0xFFFFFFFF)
        data[4:8] = struct.pack("<I", 0xFFFFFFF0)


def _flac_frames(data: bytearray, value: int) -> None:
    """FLAC STREAMINFO: 36-bit total-samples field at bytes 21-25 (after 'fLaC' and the block header)."""
    if data[:4] == b"fLaC" and len(data) >= 26:
        value &= (1 << 36) - 1
        data[21] = (data[21] & 0xF0) | (value >> 32)
        data[22:26] = struct.pack(">I", value & 0xFFFFFFFF)


def write_hostile(path: str | Path, spec: HostileSpec) -> Path:
    """Write ``spec`` to ``path``: a clean file, then its mutation."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.mutation == "garbage":
        path.write_bytes(np.random.default_rng(spec.seed).bytes(int(spec.cut * 4096)))
        return path
    write_clean(path, spec)
    data = bytearray(path.read_bytes())
    m = spec.mutation
    if m == "truncate":
        data = data[: int(spec.cut * len(data))]
    elif m in ("flip", "flip_header"):
        span = min(len(data), 64) if m == "flip_header" else len(data)
        for f in spec.flips:
            if span:
                k = min(span - 1, int(f * span))
                data[k] ^= 0xFF
    elif m in ("frames", "channels", "rate"):
        if spec.container == "flac" and m == "frames":
            _flac_frames(data, spec.value)
        else:
            _riff_field(data, m, spec.value)
    elif m == "zero_data":
        j = data.find(b"data")
        data = data[: j + 8] if j >= 0 else data[:44]
        if j >= 0:
            data[j + 4:j + 8] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    return path


def random_spec(rng: np.random.Generator, seed: int) -> HostileSpec:
    """A spec drawn at random over every axis (rates 1 Hz-1 MHz, 1-64 channels, every subtype)."""
    container = str(rng.choice(list(FORMATS)))
    rate = int(rng.choice([1, 2, 100, 4000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000, 384000,
                           1_000_000]))
    if container == "ogg":  # the Vorbis encoder takes 1 kHz..200 kHz
        rate = int(np.clip(rate, 8000, 192000))
    channels = int(rng.choice([1, 1, 1, 2, 2, 3, 6, 8, 16, 33, 64]))
    seconds = float(rng.choice([0.0005, 0.05, 0.099, 0.1, 0.25, 0.6, 1.2, 2.5]))
    while channels * seconds * rate > 4e6:  # keep each file small; lying headers do the claiming
        seconds /= 4
    value = int(rng.choice([0, 1, 65535, 2**31 - 1, 2**32 - 1, 10**9, 7]))
    return HostileSpec(container=container, subtype=str(rng.choice(FORMATS[container])), sample_rate=rate,
                       channels=channels, seconds=seconds, content=str(rng.choice(CONTENTS)),
                       mutation=str(rng.choice(MUTATIONS, p=[0.28, 0.12, 0.12, 0.1, 0.1, 0.06, 0.06, 0.08, 0.08])),
                       cut=float(rng.uniform(0, 1)), flips=tuple(float(x) for x in rng.uniform(0, 1, rng.integers(1, 8))),
                       value=value, seed=seed)


def make_hostile_corpus(root: str | Path, *, n: int = 300, seed: int = 0,
                        long_silence_hours: float = 0.0) -> list[tuple[Path, HostileSpec]]:
    """``n`` hostile files under ``root/<label>/`` (a ``--corpus folders`` tree), plus a text file
    named as audio and, with ``long_silence_hours``, one long silent recording (4 kHz, 8-bit)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spec = random_spec(rng, seed * 100_000 + i)
        label = ("calm", "tense")[i % 2]
        out.append((write_hostile(root / label / f"f{i:04d}.{spec.container}", spec), spec))
    (root / "calm" / "notes.wav").write_text("a text file named as audio\n")
    if long_silence_hours:
        path = root / "tense" / "silence.wav"
        with sf.SoundFile(str(path), "w", samplerate=4000, channels=1, subtype="PCM_U8") as f:
            block = np.zeros(4000 * 60, dtype=np.float32)
            for _ in range(int(long_silence_hours * 60)):
                f.write(block)
        out.append((path, HostileSpec(sample_rate=4000, content="silence", seconds=long_silence_hours * 3600)))
    return out
