"""Audio that libsndfile cannot read (AAC in M4A/MP4, WebM, WMA, AMR, video containers, ...),
decoded with FFmpeg through PyAV: the ``formats`` extra (``pip install 'emovox[formats]'``; part of
``make install``). Only ``data/audio.py`` calls this: it tries libsndfile first and comes here when
that fails, so WAV/FLAC/OGG/MP3 never need FFmpeg.

Phones, meeting tools and browsers record to these containers (a call from a phone is an ``.m4a``,
a meeting an ``.mp4``, a browser's MediaRecorder a ``.webm``), so the conversation path reads them
as they come instead of asking for a conversion first.

The header of a compressed stream gives its length as a duration, not a sample count: ``probe``
turns it into frames at the stream's rate, and the decoder may yield a few milliseconds more or
less (encoder priming, the last packet's padding); callers read up to what the probe said.
"""
from __future__ import annotations

from pathlib import Path
from typing import IO, Iterator

import numpy as np

# Suffixes decoded here (libsndfile reads WAV, FLAC, OGG Vorbis/Opus and MP3 itself).
FFMPEG_EXTENSIONS = (".m4a", ".mp4", ".aac", ".webm", ".weba", ".wma", ".amr", ".3gp", ".mkv", ".mka", ".mov",
                     ".m4b", ".caf")
INSTALL_HINT = "pip install 'emovox[formats]' (PyAV, which brings FFmpeg)"
SEEK_BACK_SECONDS = 1.0  # seek this far before a window's start, then decode forward to the exact sample


class DecodeError(Exception):
    """FFmpeg could not open or decode the input; the message says why (one line)."""


def available() -> bool:
    """Whether PyAV (and with it FFmpeg) is installed (found, not imported: that costs a start-up)."""
    from importlib.util import find_spec

    return find_spec("av") is not None


def libsndfile_container(head: bytes) -> bool:
    """Whether the first bytes announce a container libsndfile reads (WAV, FLAC, Ogg, AIFF, AU,
    MP3): when libsndfile refuses such a file it is damaged, and FFmpeg, which decodes what it can,
    is not asked, so that a truncated WAV stays an invalid file instead of half a clip."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b".snd") or head[:3] == b"ID3":
        return True
    # an MPEG audio frame header (11 sync bits, a layer): MP3; ADTS AAC has layer 0 and goes to FFmpeg
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x3 != 0


def wants_ffmpeg(path: str | Path) -> bool:
    """Whether ``path``'s suffix is one only FFmpeg decodes."""
    return Path(path).suffix.lower() in FFMPEG_EXTENSIONS


def _open(source: str | Path | IO[bytes]):
    try:
        import av

        container = av.open(source if not isinstance(source, Path) else str(source), mode="r")
    except Exception as exc:  # av.error.* (InvalidDataError, FileNotFoundError, ...)
        raise DecodeError(_reason(exc)) from None
    if not container.streams.audio:
        container.close()
        raise DecodeError("no audio stream in the file")
    return container


def probe(source: str | Path | IO[bytes]) -> tuple[int, int, int]:
    """``(frames, sample_rate, channels)`` of the first audio stream, from the container's header.

    Raises:
        DecodeError: not a container FFmpeg opens, no audio stream, or no length or rate given.
    """
    container = _open(source)
    try:
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = _channels(stream)
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000  # AV_TIME_BASE
        else:
            raise DecodeError("the container does not give the stream's length (a live stream?); re-encode it")
        if rate <= 0:
            raise DecodeError("the audio stream has no sample rate")
        return max(0, int(round(seconds * rate))), rate, channels
    finally:
        container.close()


def blocks(source: str | Path | IO[bytes], *, start: int = 0) -> Iterator[np.ndarray]:
    """Decoded float32 ``[n, channels]`` blocks of the first audio stream from sample ``start`` on.

    A ``start`` past the first second seeks (to a packet before it) and decodes forward, dropping
    the samples before ``start``: a window of a long recording costs that window, not the file.

    Raises:
        DecodeError: the body cannot be decoded.
    """
    container = _open(source)
    import av

    try:
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate)
        if start > SEEK_BACK_SECONDS * rate and stream.time_base is not None:
            target = (start / rate - SEEK_BACK_SECONDS) / float(stream.time_base)
            container.seek(max(0, int(target)), stream=stream, backward=True)
        to_float = av.AudioResampler(format="fltp")
        # sample 0 is the stream's first sample (its start time, e.g. 64 ms in a Matroska file), as a
        # decode from the start counts them; a seek places its first frame by timestamp on that scale
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        position: int | None = None if start else 0  # sample index of the next decoded frame's first sample
        for packet in container.demux(stream):
            for frame in packet.decode():
                if frame.time is not None and position is None:
                    position = int(round((frame.time - origin) * rate))
                if position is None:  # no timestamps to place a seek by: decode from the start instead
                    yield from _from_start(source, start)
                    return
                for plain in to_float.resample(frame):
                    data = plain.to_ndarray().T  # planar [channels, n] -> [n, channels]
                    skip = min(len(data), max(0, start - position))
                    position += len(data)
                    if skip < len(data):
                        yield np.ascontiguousarray(data[skip:], dtype=np.float32)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(_reason(exc)) from None
    finally:
        container.close()


def _from_start(source, start: int) -> Iterator[np.ndarray]:
    """``blocks`` without seeking: decode from sample 0, dropping what comes before ``start``."""
    if hasattr(source, "seek"):
        source.seek(0)
    seen = 0
    for data in blocks(source, start=0):
        skip = min(len(data), max(0, start - seen))
        seen += len(data)
        if skip < len(data):
            yield data[skip:]


def decode_all(source: str | Path | IO[bytes]) -> tuple[np.ndarray, int]:
    """The first audio stream as float32 ``[n, channels]`` (up to the length its header gives, as a
    file is read) and its sample rate.

    Raises:
        DecodeError: as ``probe`` and ``blocks``.
    """
    frames, rate, channels = probe(source)
    if hasattr(source, "seek"):
        source.seek(0)
    parts = list(blocks(source))
    data = np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)
    return data[:frames], rate


def _channels(stream) -> int:
    layout = getattr(stream.codec_context, "layout", None)
    n = getattr(layout, "nb_channels", None) or getattr(stream.codec_context, "channels", None) or 1
    return int(n)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    return msg.split("] ", 1)[-1][:160]  # "[Errno 1094995529] Invalid data found ..." -> the words
