"""Audio I/O: the one place that knows the sample rate and how files become float32 mono arrays."""
from __future__ import annotations

import hashlib
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from ..errors import BadAudio
from . import ffmpeg_decode

SAMPLE_RATE = 16_000
DEFAULT_MAX_SECONDS = 5.0
# libsndfile's own formats, then what FFmpeg decodes (data/ffmpeg_decode.py; the `formats` extra)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", *ffmpeg_decode.FFMPEG_EXTENSIONS)
SILENCE_PEAK = 1e-5  # below this absolute peak a clip is digital silence
# Limits on what any command accepts (README, "Audio limits"). A header is checked against them
# before a sample is decoded, so a lying header (10^9 frames, 1 MHz, 64 channels) allocates nothing.
MIN_SECONDS = 0.1  # wav2vec2's receptive field is 25 ms (400 samples) and Whisper needs 2 frames; 0.1 s
#                    gives every encoder >= 4 output frames, and nothing shorter is an utterance
MAX_SECONDS = 4 * 3600.0  # longest file: 4 h (predict streams it in windows; prepare decodes in blocks)
MIN_SAMPLE_RATE = 4_000  # below this there is no speech band left to hear
MAX_SAMPLE_RATE = 384_000  # the highest rate studio converters use
MAX_CHANNELS = 32
MAX_SAMPLES = 2 * 3600 * 48_000 * 2  # frames x channels a header may claim (2 h of 48 kHz stereo)
FILE_TIME_LIMIT = 120.0  # seconds one file may take to decode before it is named as too slow
BLOCK_FRAMES = 1 << 18
UNKNOWN_FRAMES = 1 << 62  # what libsndfile reports for a stream of unknown length  # frames decoded at a time: memory stays bounded whatever the file says


@dataclass(frozen=True)
class AudioInfo:
    """What the header says about a file, without decoding it."""

    frames: int
    sample_rate: int
    channels: int
    ffmpeg: bool = False  # decoded through FFmpeg (frames then come from the header's duration)

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
        found = _ffmpeg_info(path, exc)
    else:
        found = AudioInfo(frames=max(0, int(info.frames)), sample_rate=int(info.samplerate),
                          channels=int(info.channels))
    if found.frames >= UNKNOWN_FRAMES:  # libsndfile cannot read such streams to their end reliably
        raise BadAudio(f"{path}: the header does not give the length (a streamed file, e.g. FLAC total samples "
                       "0); re-encode it")
    check_header(found, path)
    return found


def _ffmpeg_info(path: Path, sndfile_error: Exception) -> AudioInfo:
    """The header of a file libsndfile refused, read by FFmpeg where that is installed.

    Raises:
        BadAudio: neither reads it; for a suffix only FFmpeg decodes without PyAV installed, how to
            install it.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:  # a folder, no permission: what libsndfile said is the reason
        raise BadAudio(f"{path}: not readable as audio ({_short(sndfile_error)})") from exc
    if ffmpeg_decode.libsndfile_container(head):
        raise BadAudio(f"{path}: not readable as audio ({_short(sndfile_error)})")
    if not ffmpeg_decode.available():
        if ffmpeg_decode.wants_ffmpeg(path):
            raise BadAudio(f"{path}: needs FFmpeg to decode {path.suffix.lower()}: {ffmpeg_decode.INSTALL_HINT}")
        raise BadAudio(f"{path}: not readable as audio ({_short(sndfile_error)})")
    try:
        frames, rate, channels = ffmpeg_decode.probe(path)
    except ffmpeg_decode.DecodeError as exc:
        raise BadAudio(f"{path}: not readable as audio ({_short(sndfile_error)}; FFmpeg: {exc})") from None
    return AudioInfo(frames=frames, sample_rate=rate, channels=channels, ffmpeg=True)


def check_header(info: AudioInfo, path: str | Path) -> None:
    """Refuse a header outside the limits before anything is decoded or allocated.

    Raises:
        BadAudio: naming the value the header claims and the limit.
    """
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise BadAudio(f"{path}: {info.channels} channels; 1 to {MAX_CHANNELS} are accepted")
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise BadAudio(f"{path}: sample rate {info.sample_rate} Hz; {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz "
                       "are accepted")
    if info.duration > MAX_SECONDS:
        raise BadAudio(f"{path}: the header claims {info.duration / 3600:.3g} h; the longest file accepted is "
                       f"{MAX_SECONDS / 3600:g} h")
    if info.frames * info.channels > MAX_SAMPLES:
        raise BadAudio(f"{path}: the header claims {info.frames} frames x {info.channels} channels; at most "
                       f"{MAX_SAMPLES:.3g} samples are accepted")


def too_short(frames: int, sample_rate: int) -> bool:
    return frames < MIN_SECONDS * sample_rate - 1e-6


def short_reason(path: str | Path, frames: int, sample_rate: int) -> str:
    return (f"{path}: too short: {frames / sample_rate:.4f} s ({frames} samples at {sample_rate} Hz); the shortest "
            f"clip accepted is {MIN_SECONDS:g} s")


def read_blocks(path: str | Path, info: AudioInfo, *, frames: int = -1, start: int = 0) -> Iterator[np.ndarray]:
    """Decode ``frames`` frames (all when -1) from ``start`` as float32 [n, channels] blocks.

    Never more than :data:`BLOCK_FRAMES` frames are allocated at once, never more frames than the
    header claims are read, and a file that takes longer than :data:`FILE_TIME_LIMIT` is refused.

    Raises:
        BadAudio: decoding fails part-way (a truncated or corrupt body) or takes too long.
    """
    started = time.monotonic()
    left = info.frames - start if frames < 0 else min(frames, info.frames - start)
    source = _ffmpeg_blocks(path, start) if info.ffmpeg else _sndfile_blocks(path, start, left)
    try:
        for data in source:
            if left <= 0:
                return
            data = data[:left]
            left -= len(data)
            yield data
            if time.monotonic() - started > FILE_TIME_LIMIT:
                raise BadAudio(f"{path}: decoding took over {FILE_TIME_LIMIT:g} s (the per-file limit)")
    except BadAudio:
        raise
    except Exception as exc:
        raise BadAudio(f"{path}: decoding failed ({_short(exc)})") from None
    finally:
        source.close()


def _sndfile_blocks(path: str | Path, start: int, frames: int) -> Iterator[np.ndarray]:
    """``frames`` frames from ``start``, never more than :data:`BLOCK_FRAMES` decoded at a time."""
    with sf.SoundFile(str(path)) as f:
        if start:
            f.seek(start)
        while frames > 0 and len(data := f.read(min(BLOCK_FRAMES, frames), dtype="float32", always_2d=True)):
            frames -= len(data)
            yield data


def _ffmpeg_blocks(path: str | Path, start: int) -> Iterator[np.ndarray]:
    """FFmpeg's decoded frames regrouped into blocks of at most :data:`BLOCK_FRAMES`."""
    for data in ffmpeg_decode.blocks(Path(path), start=start):
        for i in range(0, len(data), BLOCK_FRAMES):
            yield data[i: i + BLOCK_FRAMES]


@dataclass(frozen=True)
class AudioScan:
    """What one pass over a whole file found (``prepare`` keeps duration and digest)."""

    frames: int
    sample_rate: int
    finite: bool
    peak: float
    digest: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def scan_audio(path: str | Path) -> AudioScan:
    """Decode a whole file block by block and check it, in bounded memory.

    The digest hashes the decoded samples, so the same audio under another name or container
    has the same digest.

    Raises:
        BadAudio: unreadable, outside the limits, too short, NaN/inf samples or digital silence.
    """
    info = read_info(path)
    h = hashlib.blake2b(digest_size=16)
    frames, peak, finite = 0, 0.0, True
    for block in read_blocks(path, info):
        frames += len(block)
        h.update(np.ascontiguousarray(block).tobytes())
        mono = _mono(block)  # checked as load_audio checks: the mixdown at the file's rate
        ok = np.isfinite(mono)
        finite = finite and bool(ok.all())
        if ok.any():
            peak = max(peak, float(np.abs(mono[ok]).max()))
    scan = AudioScan(frames, info.sample_rate, finite, peak, h.hexdigest())
    if frames == 0:
        raise BadAudio(f"{path}: zero samples")
    if too_short(frames, info.sample_rate):
        raise BadAudio(short_reason(path, frames, info.sample_rate))
    if not finite:
        raise BadAudio(f"{path}: contains NaN or infinite samples")
    if peak < SILENCE_PEAK:
        raise BadAudio(f"{path}: digital silence (peak below {SILENCE_PEAK:g})")
    return scan


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
    sr = info.sample_rate
    frames = -1 if max_seconds is None else int(np.ceil(max_seconds * sr))
    parts = [_mono(b) for b in read_blocks(path, info, frames=frames)]
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if check:  # the mixdown at the file's own rate, exactly what scan_audio (prepare) checks
        check_wave(wave, path, sample_rate=sr)
    if sr != sample_rate and wave.size:
        wave = soxr.resample(wave, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    if max_seconds is not None:
        wave = wave[: int(round(max_seconds * sample_rate))]
    return np.ascontiguousarray(wave, dtype=np.float32)


def load_channels(path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file to float32 ``[channels, n]`` at ``sample_rate``, each channel kept apart (a
    call recorded with one party per channel); checked as :func:`load_audio` checks the mixdown.

    Raises:
        BadAudio: as :func:`load_audio`.
    """
    info = read_info(path)
    same = info.sample_rate == sample_rate  # else each block is resampled as it comes: memory stays at 16 kHz
    stream = None if same else soxr.ResampleStream(info.sample_rate, sample_rate, info.channels, dtype="float32",
                                                   quality="HQ")
    parts = [b if same else stream.resample_chunk(np.ascontiguousarray(b)) for b in read_blocks(path, info)]
    if stream is not None:
        parts.append(stream.resample_chunk(np.zeros((0, info.channels), np.float32), last=True))
    data = np.concatenate(parts) if parts else np.zeros((0, info.channels), np.float32)
    check_wave(_mono(data), path, sample_rate=sample_rate)
    return np.ascontiguousarray(np.asarray(data, dtype=np.float32).T)


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
        if ffmpeg_decode.libsndfile_container(data[:16]):
            raise BadAudio(f"{where}: not readable as audio ({_short(exc)})") from None
        if not ffmpeg_decode.available():
            raise BadAudio(f"{where}: not readable as audio ({_short(exc)}; for AAC/M4A, WebM and other "
                           f"containers: {ffmpeg_decode.INSTALL_HINT})") from None
        try:
            frames, sr = ffmpeg_decode.decode_all(io.BytesIO(data))
        except ffmpeg_decode.DecodeError as why:
            raise BadAudio(f"{where}: not readable as audio ({_short(exc)}; FFmpeg: {why})") from None
    check_wave(_mono(frames), where, sample_rate=sr)  # checked as load_audio checks files
    wave = _mono_at(frames, sr, sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _mono_at(data: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """(frames, channels) at ``sr`` -> mono at ``sample_rate`` (channels averaged, soxr HQ)."""
    wave = _mono(data)
    if sr != sample_rate and wave.size:
        wave = soxr.resample(wave, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return wave


def _mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def check_wave(wave: np.ndarray, path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> None:
    """Reject waves no model should see.

    Raises:
        BadAudio: zero samples, shorter than :data:`MIN_SECONDS`, NaN/inf values, or digital silence.
    """
    if wave.size == 0:
        raise BadAudio(f"{path}: zero samples")
    if too_short(wave.size, sample_rate):
        raise BadAudio(short_reason(path, wave.size, sample_rate))
    if not np.isfinite(wave).all():
        raise BadAudio(f"{path}: contains NaN or infinite samples")
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        raise BadAudio(f"{path}: digital silence (peak below {SILENCE_PEAK:g})")


def trim_silence(wave: np.ndarray, top_db: float, *, margin_seconds: float = 0.15,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut leading and trailing silence: keep from the first to the last 10 ms frame whose energy
    is within ``top_db`` of the loudest frame, plus ``margin_seconds`` either side. A clip with
    no quieter edges (or shorter than a frame) comes back whole."""
    hop = sample_rate // 100
    n = wave.shape[0] // hop
    if n < 2 or top_db <= 0:
        return wave
    energy = np.square(wave[: n * hop].reshape(n, hop), dtype=np.float64).mean(axis=1) + 1e-12
    db = 10.0 * np.log10(energy)
    loud = np.flatnonzero(db > db.max() - float(top_db))
    margin = int(round(margin_seconds * sample_rate))
    start = max(0, int(loud[0]) * hop - margin)
    end = min(wave.shape[0], (int(loud[-1]) + 1) * hop + margin)
    return wave[start:end]


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
    for start, end in window_bounds(info.frames, win, hop):
        parts = [_mono(b) for b in read_blocks(path, info, frames=end - start, start=start)]
        if not parts:
            return  # the header claimed more frames than the file holds
        wave = np.concatenate(parts)
        if not np.isfinite(wave).all():
            raise BadAudio(f"{path}: contains NaN or infinite samples (at {start / sr:.1f} s)")
        if sr != sample_rate:
            wave = soxr.resample(wave, sr, sample_rate, quality="HQ").astype(np.float32)
        yield start / sr, wave


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM (WAV/FLAC by extension)."""
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype="PCM_16")


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()
    text = msg[-1] if msg else type(exc).__name__
    text = re.sub(r"^Error opening .*?: ", "", text)
    return text.replace(str(Path.cwd()) + "/", "")[:160]
