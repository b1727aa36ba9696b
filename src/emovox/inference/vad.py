"""Speech segments: where someone speaks in a recording, found by silero-vad's pretrained detector
(the ONNX model its registry package ships, or an export's copy: ``voice_models``), run by
onnxruntime with silero's framing and its start/end rule redone in numpy (its Python package
imports torch, which the runtime install does not have).

Silence is never encoded: only the segments found here reach the emotion model. A segment longer
than ``max_segment`` is cut at its quietest point (the lowest speech probability, then the lowest
energy, away from both ends), so a cut falls between words wherever the speaker paused at all.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.audio import SAMPLE_RATE
from ..errors import BadConfig
from .voice_models import onnx_session, vad_model_path

FRAME = 512  # silero-vad's frame at 16 kHz (32 ms): one speech probability per frame
CONTEXT = 64  # samples of the previous frame each frame is scored with
STATE = 128  # the detector's LSTM state size
BLOCK_FRAMES = 512  # frames per ONNX call (16.4 s)
_LOCK = threading.Lock()
_SESSIONS: dict[Path, object] = {}


@dataclass(frozen=True)
class VadOptions:
    """How speech is found and cut.

    Attributes:
        threshold: speech probability above which a frame is speech.
        min_speech: shorter bursts are dropped (coughs, clicks), in seconds.
        min_silence: a pause shorter than this does not end a segment, in seconds. Below the
            shortest pause between two speakers, above the pauses between a speaker's words.
        max_segment: longer speech is cut at its quietest point, in seconds.
        pad: seconds of context kept either side of each segment (never over a neighbour).
    """

    threshold: float = 0.5
    min_speech: float = 0.25
    min_silence: float = 0.25
    max_segment: float = 15.0
    pad: float = 0.2

    def check(self) -> "VadOptions":
        """Raises:
            BadConfig: a value outside its range, naming the option and what is valid."""
        if not 0.0 < self.threshold < 1.0:
            raise BadConfig(f"--vad-threshold {self.threshold}: must be between 0 and 1")
        for name in ("min_speech", "min_silence", "pad"):
            if getattr(self, name) < 0:
                raise BadConfig(f"--{name.replace('_', '-')} {getattr(self, name)}: must be 0 or more seconds")
        if self.max_segment < max(1.0, 2 * self.min_speech):
            raise BadConfig(f"--max-segment {self.max_segment}: must be at least 1 s and twice --min-speech")
        return self


def detector(bundle: Path | None = None):
    """An onnxruntime session of silero-vad's sequence model (:func:`vad_model_path`), one per
    file per process."""
    path = vad_model_path(bundle)
    with _LOCK:
        if path not in _SESSIONS:
            _SESSIONS[path] = onnx_session(path)
        return _SESSIONS[path]


def speech_probabilities(wave: np.ndarray, bundle: Path | None = None) -> np.ndarray:
    """One speech probability per 32 ms frame of a 16 kHz wave (the last frame zero-padded): the
    sequence model over blocks of up to 512 frames, each frame with the 64 samples before it and
    the LSTM state carried from block to block, as ``silero_vad.sequence_vad`` runs it."""
    x = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
    n = -(-x.size // FRAME)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = np.zeros((n, FRAME), dtype=np.float32)
    frames.reshape(-1)[:x.size] = x
    context = np.zeros((n, CONTEXT), dtype=np.float32)
    context[1:] = frames[:-1, -CONTEXT:]
    blocks = np.concatenate([context, frames], axis=1)
    session = detector(bundle)
    h = c = np.zeros((1, 1, STATE), dtype=np.float32)
    out = []
    for k in range(0, n, BLOCK_FRAMES):
        p, h, c = session.run(["speech_probs", "hn", "cn"], {"input": blocks[k:k + BLOCK_FRAMES], "h": h, "c": c})
        out.append(np.asarray(p).reshape(-1))
    return np.concatenate(out)


def speech_spans(probs: np.ndarray, n_samples: int, opts: VadOptions) -> list[tuple[int, int]]:
    """silero-vad's ``get_speech_timestamps_from_probs`` with no padding and no length limit
    (:func:`pad_spans` and :func:`split_long` do those): speech starts at a frame at or over the
    threshold and ends where the probability has stayed under ``threshold - 0.15`` for
    ``min_silence``; bursts no longer than ``min_speech`` are dropped. Sample pairs, in order."""
    thr = opts.threshold
    neg = max(thr - 0.15, 0.01)
    min_speech = SAMPLE_RATE * int(opts.min_speech * 1000) / 1000
    min_silence = SAMPLE_RATE * int(opts.min_silence * 1000) / 1000
    spans: list[tuple[int, int]] = []
    start = quiet_from = None
    for i, p in enumerate(probs):
        here = FRAME * i
        if p >= thr:
            quiet_from = None
            start = here if start is None else start
        elif start is not None and p < neg:
            quiet_from = here if quiet_from is None else quiet_from
            if here - quiet_from >= min_silence:
                if quiet_from - start > min_speech:
                    spans.append((start, quiet_from))
                start = quiet_from = None
    if start is not None and n_samples - start > min_speech:
        spans.append((start, n_samples))
    return spans


def find_speech(wave: np.ndarray, options: VadOptions | None = None, bundle: Path | None = None) -> list[tuple[int, int]]:
    """Speech segments of a 16 kHz wave as ``(start, end)`` sample pairs, in time order, none
    longer than ``options.max_segment``; ``bundle``: an export's conversation models, if any."""
    opts = (options or VadOptions()).check()
    probs = speech_probabilities(wave, bundle)
    cut = [piece for s, e in speech_spans(probs, len(wave), opts) for piece in split_long(s, e, probs, wave, opts)]
    return pad_spans(cut, int(opts.pad * SAMPLE_RATE), len(wave))


def split_long(start: int, end: int, probs: np.ndarray, wave: np.ndarray, opts: VadOptions) -> list[tuple[int, int]]:
    """Cut ``[start, end)`` until no piece is longer than ``max_segment``: each cut at the frame
    with the lowest speech probability (ties: lowest energy), at least ``min_speech`` (and 1 s)
    from either end, and, where the segment allows it, leaving a first piece within the limit."""
    longest = int(opts.max_segment * SAMPLE_RATE)
    if end - start <= longest:
        return [(start, end)]
    margin = max(int(opts.min_speech * SAMPLE_RATE), SAMPLE_RATE)
    lo = max(start + margin, end - longest)  # the rest must fit after the cut where it can
    hi = min(end - margin, start + longest)
    if lo >= hi:  # longer than twice the limit: any cut in the middle region, then recurse
        lo, hi = start + margin, end - margin
    first, last = lo // FRAME, max(lo // FRAME + 1, hi // FRAME)
    frames = np.arange(first, min(last, len(probs)))
    if frames.size == 0:
        cut = (start + end) // 2
    else:
        energy = np.array([float(np.square(wave[f * FRAME:(f + 1) * FRAME]).mean()) for f in frames])
        order = np.lexsort((energy, np.round(probs[frames], 2)))
        cut = int(frames[order[0]] * FRAME + FRAME // 2)
    return split_long(start, cut, probs, wave, opts) + split_long(cut, end, probs, wave, opts)


def pad_spans(spans: list[tuple[int, int]], pad: int, n: int) -> list[tuple[int, int]]:
    """Widen each span by ``pad`` samples either side without running into its neighbours or
    past the wave; spans that touch (a cut long segment) stay touching."""
    out = []
    for i, (s, e) in enumerate(spans):
        left = spans[i - 1][1] if i else 0
        right = spans[i + 1][0] if i + 1 < len(spans) else n
        s2 = s if left == s else max(left if i == 0 else (left + s) // 2, s - pad, 0)
        e2 = e if right == e else min(right if i + 1 == len(spans) else (e + right) // 2, e + pad, n)
        out.append((s2, e2))
    return out
