"""A synthetic emotional-speech corpus shaped like CREMA-D, for the demo and the tests: the
clips of ``data.speech_synth`` written as 16-bit WAVs named as CREMA-D names them.

Each clip is seeded from ``(seed, actor, sentence, emotion, intensity)``, so the corpus is
bit-identical whatever the number of worker processes.
"""
from __future__ import annotations

import io
import numbers
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from ..errors import BadConfig, BadLabel
from .audio import SAMPLE_RATE
from .speech_synth import (CREMA_SENTENCES, SpeakerVoice, check_codes, clip_filename, clip_rng, clip_specs,
                           speaker_voice, synthesize_clip)

__all__ = ["CREMA_SENTENCES", "clip_rng", "clip_specs", "make_demo_corpus", "speaker_voice", "synthesize_clip"]


def make_demo_corpus(
    *,
    out: str | Path,
    speakers: int = 16,
    seed: int = 0,
    sentences: Sequence[str] = CREMA_SENTENCES,
    workers: int | None = None,
) -> list[Path]:
    """Write a CREMA-D shaped corpus of synthetic clips to the flat folder ``out``.

    Per actor: every sentence at the six emotions (intensity XX), plus sentence IEO at LO/MD/HI
    for the five non-neutral emotions -- 87 clips with all 12 sentences. Files are 16-bit PCM
    WAV at 16 kHz named ``{actor}_{sentence}_{emotion}_{intensity}.wav``; existing files with
    those names are overwritten. Output is bit-identical for any ``workers``.

    Args:
        out: Folder to write into (created when missing).
        speakers: Number of actors (ids 1001, 1002, ...; male and female alternate).
        seed: Corpus seed; voices and every clip derive from it.
        sentences: Subset of ``CREMA_SENTENCES`` to record.
        workers: Processes to use; None means one per CPU, 1 runs in this process.

    Returns:
        The written paths, ordered by actor, sentence, emotion, intensity.

    Raises:
        BadConfig: ``speakers``, ``seed`` or ``workers`` out of range.
        BadLabel: an unknown or repeated sentence code.
    """
    _check_corpus_args(speakers=speakers, seed=seed, sentences=sentences, workers=workers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / clip_filename(voice.actor, *spec), voice, *spec, int(seed))
            for voice in (speaker_voice(seed=int(seed), index=i) for i in range(int(speakers)))
            for spec in clip_specs(sentences)]
    n_workers = min(int(workers or _cpu_count()), len(jobs))
    if n_workers == 1:
        return [_write_clip(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(_write_clip, jobs, chunksize=max(1, len(jobs) // (n_workers * 8))))


def _cpu_count() -> int:
    """CPUs this process may run on (the affinity mask when the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _write_clip(job: tuple[Path, SpeakerVoice, str, str, str, int]) -> Path:
    path, voice, sentence, emotion, intensity, seed = job
    rng = clip_rng(seed=seed, actor=voice.actor, sentence=sentence, emotion=emotion, intensity=intensity)
    wave = synthesize_clip(emotion=emotion, intensity=intensity, speaker=voice, sentence=sentence, rng=rng)
    _write_wav(path, wave)
    return path


def _write_wav(path: Path, wave: np.ndarray) -> None:
    """16-bit PCM WAV, as ``audio.write_audio`` writes it, but encoded in memory and written in
    one call: soundfile's close() fsyncs each file, which dominates the run time on slow disks.
    """
    buffer = io.BytesIO()
    sf.write(buffer, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


def _check_corpus_args(*, speakers: int, seed: int, sentences: Sequence[str], workers: int | None) -> None:
    _check_whole("speakers", speakers, minimum=1)
    _check_whole("seed", seed, minimum=0)
    if workers is not None:
        _check_whole("workers", workers, minimum=1, extra=" or None (one per CPU)")
    if isinstance(sentences, str) or not sentences or len(set(sentences)) != len(sentences):
        raise BadLabel(f"sentences must be a non-empty list of distinct codes from "
                       f"{', '.join(CREMA_SENTENCES)}; got {sentences!r}")
    check_codes(emotion="NEU", intensity="XX", sentences=sentences)


def _check_whole(name: str, value: object, *, minimum: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise BadConfig(f"{name} (--{name}) must be a whole number >= {minimum}{extra}; got {value!r}")
