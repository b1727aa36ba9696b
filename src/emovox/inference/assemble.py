"""Conversations assembled from single-speaker clips with the truth kept: who speaks when, and
with which emotion. Tests and ``benchmarks/conversation.py`` measure ``--segment vad`` and
``--speakers`` on them; users can measure their own models the same way.

Each clip's leading and trailing silence is cut (energy, ``trim_db`` below its loudest 10 ms),
then the clips follow one another with a random pause between them, over a low white hiss.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.audio import SAMPLE_RATE, load_audio, trim_silence, write_audio


@dataclass(frozen=True)
class Turn:
    """One clip in the conversation: where it sits (seconds) and what it is."""

    path: str
    speaker: str
    label: str
    start: float
    end: float


def assemble_conversation(clips: Sequence[dict], *, pauses: tuple[float, float] = (0.4, 1.2),
                          snr_db: float | None = 35.0, trim_db: float | None = 40.0, lead: float = 0.5,
                          seed: int = 0) -> tuple[np.ndarray, list[Turn]]:
    """Join ``clips`` (dicts with ``path``, ``speaker``, ``label``, e.g. manifest rows) in order.

    Args:
        pauses: each pause is drawn uniformly from this range, in seconds.
        snr_db: hiss level below the speech's mean power; None for none.
        trim_db: cut each clip's silent ends (None keeps the clip whole).
        lead: silence before the first and after the last turn, in seconds.

    Returns:
        The 16 kHz wave and the turns, in time order.

    Raises:
        BadAudio: a clip cannot be read.
    """
    rng = np.random.default_rng(seed)
    parts, turns, t = [np.zeros(int(lead * SAMPLE_RATE), np.float32)], [], lead
    for i, clip in enumerate(clips):
        wave = load_audio(clip["path"])
        if trim_db:
            wave = trim_silence(wave, trim_db, margin_seconds=0.0)
        if i:
            gap = np.zeros(int(rng.uniform(*pauses) * SAMPLE_RATE), np.float32)
            parts.append(gap)
            t += len(gap) / SAMPLE_RATE
        parts.append(wave)
        turns.append(Turn(str(clip["path"]), str(clip["speaker"]), str(clip["label"]), round(t, 4),
                          round(t + len(wave) / SAMPLE_RATE, 4)))
        t += len(wave) / SAMPLE_RATE
    parts.append(np.zeros(int(lead * SAMPLE_RATE), np.float32))
    out = np.concatenate(parts)
    if snr_db is not None and turns:
        speech = np.concatenate(parts[1:-1:2]) if len(parts) > 2 else out
        power = float(np.mean(np.square(speech, dtype=np.float64)))
        out = out + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), out.shape).astype(np.float32)
    return np.clip(out, -1.0, 1.0).astype(np.float32), turns


def write_conversation(path: str | Path, clips: Sequence[dict], **kwargs) -> list[Turn]:
    """:func:`assemble_conversation` written to ``path`` (WAV or FLAC); returns the turns."""
    wave, turns = assemble_conversation(clips, **kwargs)
    write_audio(path, wave)
    return turns


def alternate(a: Sequence[dict], b: Sequence[dict], turns: int) -> list[dict]:
    """``turns`` clips taking turns A, B, A, B, ... (each list cycled if it is shorter)."""
    return [(a if i % 2 == 0 else b)[(i // 2) % len(a if i % 2 == 0 else b)] for i in range(turns)]
