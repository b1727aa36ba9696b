"""Speech segments: where someone speaks in a recording, found by silero-vad's pretrained detector
(the ONNX model its registry package ships, run by onnxruntime: offline, no torch in the loop).

Silence is never encoded: only the segments found here reach the emotion model. A segment longer
than ``max_segment`` is cut at its quietest point (the lowest speech probability, then the lowest
energy, away from both ends), so a cut falls between words wherever the speaker paused at all.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..data.audio import SAMPLE_RATE
from ..errors import BadConfig

FRAME = 512  # silero-vad's frame at 16 kHz (32 ms): one speech probability per frame
_LOCK = threading.Lock()
_MODEL = None


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
    pad: float = 0.1

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


def silero_model():
    """The silero-vad sequence model (one ONNX call per 16 s block), loaded once per process.

    Raises:
        BadConfig: silero-vad is not installed (the message says how to install it).
    """
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            _MODEL = _load_silero()
        return _MODEL


def _load_silero():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    threads = torch.get_num_threads() if torch is not None else None
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        raise BadConfig("--segment vad needs silero-vad: pip install --no-deps --require-hashes "
                        "-r requirements/conversation.txt") from None
    finally:
        if threads:  # importing silero_vad sets torch to one thread for the whole process
            torch.set_num_threads(threads)
    return load_silero_vad(sequence=True)


def speech_probabilities(wave: np.ndarray) -> np.ndarray:
    """One speech probability per 32 ms frame of a 16 kHz wave."""
    return silero_model().audio_forward(np.ascontiguousarray(wave, dtype=np.float32), sampling_rate=SAMPLE_RATE)


def find_speech(wave: np.ndarray, options: VadOptions | None = None) -> list[tuple[int, int]]:
    """Speech segments of a 16 kHz wave as ``(start, end)`` sample pairs, in time order, none
    longer than ``options.max_segment``."""
    from silero_vad import get_speech_timestamps_from_probs

    opts = (options or VadOptions()).check()
    probs = speech_probabilities(wave)
    spans = get_speech_timestamps_from_probs(
        probs, sampling_rate=SAMPLE_RATE, threshold=opts.threshold,
        min_speech_duration_ms=int(opts.min_speech * 1000), min_silence_duration_ms=int(opts.min_silence * 1000),
        speech_pad_ms=0, audio_length_samples=len(wave))
    spans = [(int(s["start"]), int(s["end"])) for s in spans]
    cut = [piece for s, e in spans for piece in split_long(s, e, probs, wave, opts)]
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
