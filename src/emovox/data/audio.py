"""Audio I/O: the one place that knows the sample rate and how files become float32 mono arrays."""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from ..errors import BadAudio

SAMPLE_RATE = 16_000
DEFAULT_MAX_SECONDS = 5.0
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SILENCE_PEAK = 1e-5  # below this absolute peak a clip is digital silence


@dataclass(frozen=True)
class AudioInfo:
    """What the header says about a file, without decoding it."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_audio_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def read_info(path: str | Path) -> AudioInfo:
    """Read the header.

    Raises:
        BadAudio: missing, empty or not an audio file libsndfile can read.
    """
    path = Path(path)
    if not path.exists():
        raise BadAudio(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise BadAudio(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises RuntimeError/LibsndfileError/TypeError
        raise BadAudio(f"{path}: not readable as audio ({_short(exc)})") from None
    return AudioInfo(frames=int(info.frames), sample_rate=int(info.samplerate), channels=int(info.channels))


def load_audio(
    path: str | Path,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    check: bool = True,
) -> np.ndarray:
    """Decode a file to float32 mono at ``sample_rate``, cut to ``max_seconds`` when given.

    Channels are averaged; resampling uses soxr (HQ). Only the needed frames are decoded when
    the file is already at the target rate.

    Raises:
        BadAudio: unreadable, zero samples, NaN/inf samples or digital silence (with ``check``).
    """
    info = read_info(path)
    frames = -1
    if max_seconds is not None and info.sample_rate:
        frames = int(np.ceil(max_seconds * info.sample_rate))
    try:
        data, sr = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadAudio(f"{path}: decoding failed ({_short(exc)})") from None
    wave = _mono_at(data, sr, sample_rate)
    if max_seconds is not None:
        wave = wave[: int(round(max_seconds * sample_rate))]
    if check:
        check_wave(wave, path)
    return np.ascontiguousarray(wave, dtype=np.float32)


def decode_bytes(data: bytes, *, where: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an encoded audio file held in memory (WAV, FLAC, OGG, ... bytes, as a Hugging Face
    ``Audio(decode=False)`` column stores them) to float32 mono at ``sample_rate``, checked like
    :func:`load_audio`. ``where`` names the clip in messages.

    Raises:
        BadAudio: empty, undecodable, zero samples, NaN/inf samples or digital silence.
    """
    if not data:
        raise BadAudio(f"{where}: empty audio (0 bytes)")
    try:
        frames, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadAudio(f"{where}: not readable as audio ({_short(exc)})") from None
    wave = _mono_at(frames, sr, sample_rate)
    check_wave(wave, where)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _mono_at(data: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """(frames, channels) at ``sr`` -> mono at ``sample_rate`` (channels averaged, soxr HQ)."""
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate and wave.size:
        wave = soxr.resample(wave, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return wave


def check_wave(wave: np.ndarray, path: str | Path) -> None:
    """Reject waves no model should see.

    Raises:
        BadAudio: zero samples, NaN/inf values, or digital silence.
    """
    if wave.size == 0:
        raise BadAudio(f"{path}: zero samples")
    if not np.isfinite(wave).all():
        raise BadAudio(f"{path}: contains NaN or infinite samples")
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        raise BadAudio(f"{path}: digital silence (peak below {SILENCE_PEAK:g})")


def fit_length(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad to exactly ``n_samples``."""
    if wave.shape[0] >= n_samples:
        return wave[:n_samples]
    return np.pad(wave, (0, n_samples - wave.shape[0]))


def window_bounds(n_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """Start/end sample pairs covering ``n_samples`` with windows of ``window`` every ``hop``.

    A clip no longer than one window is one window; the last window is aligned to the end so
    every sample is covered and no window is mostly padding.
    """
    if n_samples <= window:
        return [(0, n_samples)]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return [(s, s + window) for s in starts]


def stream_windows(
    path: str | Path, *, window_seconds: float, hop_seconds: float, sample_rate: int = SAMPLE_RATE
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(start_seconds, wave)`` windows of a long file without decoding it whole.

    Memory stays bounded by one window whatever the file's length.

    Raises:
        BadAudio: unreadable file.
    """
    info = read_info(path)
    sr = info.sample_rate
    win, hop = int(window_seconds * sr), int(hop_seconds * sr)
    try:
        with sf.SoundFile(str(path)) as f:
            for start, end in window_bounds(info.frames, win, hop):
                f.seek(start)
                data = f.read(end - start, dtype="float32", always_2d=True)
                wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
                if sr != sample_rate:
                    wave = soxr.resample(wave, sr, sample_rate, quality="HQ").astype(np.float32)
                yield start / sr, wave
    except BadAudio:
        raise
    except Exception as exc:
        raise BadAudio(f"{path}: decoding failed ({_short(exc)})") from None


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM (WAV/FLAC by extension)."""
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype="PCM_16")


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()
    text = msg[-1] if msg else type(exc).__name__
    text = re.sub(r"^Error opening .*?: ", "", text)
    return text.replace(str(Path.cwd()) + "/", "")[:160]
