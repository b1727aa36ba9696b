"""Conversations: who felt what, when. A recording is cut into speech segments (``vad``), each
segment is scored whole at its own length (longer than the model's window: half-overlapping
windows, averaged), optionally given a speaker (``speakers``), and summarised per speaker and per
file as emotion shares over speech time.

Rows, in this order per file (the ``emovox predict --segment vad`` schema):

* one per segment: ``{"path", "start", "end", "speaker"?, "label", "score", "top_k"}``;
* with speakers, one per speaker: ``{"path", "summary": "speaker", "speaker", "speech_seconds",
  "segments", "label", "score", "shares"}`` (``label`` the emotion with the largest share of that
  speaker's speech time, ``score`` that share, ``shares`` every emotion's);
* one per file: the same with ``"summary": "file"`` (no speech at all: ``label`` null, shares empty);
* a file that cannot be read: ``{"path", "error"}``, as everywhere else.

``--speakers channels`` takes the speakers from the channels instead of a speaker encoder: a call
recorded with each party on its own channel (call centres, most telephony and meeting recorders) has
its answer written in the file. Speech is found on each channel apart, each segment is scored from
its own channel (overlapping speech is then two segments, one per speaker), and channel ``n`` is
speaker ``Sn``. A segment whose channel is :data:`BLEED_DB` or more quieter over its span than
another channel is that other party's voice leaking across (echo, a shared room) and is dropped.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from ..data.audio import MIN_SECONDS, SAMPLE_RATE, load_audio, load_channels, read_info, window_bounds
from ..errors import BadAudio, BadConfig
from .speakers import CHANNELS, cluster_speakers, embed_segments, noise_floor, parse_speakers
from .vad import VadOptions, find_speech
from .voice_models import bundle_of

SEGMENT_MODES = ("windows", "vad")
SCORE_BATCH = 32  # segments scored per call: bounds memory on long recordings, paces the progress bar


DEFAULT_MARGIN = 0.5
BLEED_DB = 15.0  # --speakers channels: a segment this much quieter than another channel over its span is cross-talk


@dataclass(frozen=True)
class ConversationOptions:
    """``--segment vad`` and what goes with it: how speech is found, how many speakers, and the
    ``margin`` of silence (zeros, seconds) framing each segment when it is scored.

    Emotion models are trained on utterances recorded with quiet lead-in and tail (RAVDESS: about
    0.5-1 s either side); a segment cut tight around its speech looks unlike any of them. Framed
    by 0.5 s of silence, segments of assembled RAVDESS conversations agreed with their clips
    scored alone far more often (benchmarks/NOTES.md); 0 scores the bare segment.
    """

    vad: VadOptions = field(default_factory=VadOptions)
    speakers: int | str | None = None
    margin: float = DEFAULT_MARGIN

    def check(self) -> "ConversationOptions":
        """Raises:
            BadConfig: a VAD option out of range, a speaker count that is not 1-32 or auto, or a
                negative or over-long margin."""
        self.vad.check()
        parse_speakers(self.speakers)
        if not 0.0 <= self.margin <= 5.0:
            raise BadConfig(f"--segment-margin {self.margin}: must be 0 to 5 seconds")
        return self


def check_segment_mode(segment: str | None, speakers=None, *, rttm=None, plot=None) -> None:
    """Checked before any model loads.

    Raises:
        BadConfig: an unknown ``--segment`` value, or ``--speakers``, ``--rttm`` or ``--plot``
            without ``--segment vad``.
    """
    if segment is not None and segment not in SEGMENT_MODES:
        raise BadConfig(f"--segment {segment!r}: valid: {', '.join(SEGMENT_MODES)}")
    for flag, value in (("--speakers", speakers), ("--rttm", rttm), ("--plot", plot)):
        if value not in (None, "") and segment != "vad":
            raise BadConfig(f"{flag} needs --segment vad (it works on speech segments)")
    parse_speakers(speakers)


def predict_conversations(predictor, paths: Sequence[str], *, speakers=None, vad: VadOptions | None = None,
                          margin: float = DEFAULT_MARGIN, rttm=None, plot=None, top_k: int = 3,
                          progress: bool = False) -> Iterator[dict]:
    """``predict(segment="vad")``: :func:`conversation_rows`, writing RTTM and timelines as files complete.

    Raises:
        BadConfig: a VAD option out of range, a bad speaker count, an RTTM file or plot folder
            that cannot be written.
    """
    from .timeline import with_outputs

    options = ConversationOptions(vad=vad or VadOptions(), speakers=parse_speakers(speakers), margin=margin).check()
    rows = conversation_rows(predictor, paths, options=options, top_k=top_k, progress=progress)
    return with_outputs(rows, rttm=rttm, plot=plot, labels=list(predictor.scheme.labels))


def conversation_rows(predictor, paths: Sequence[str], *, options: ConversationOptions, top_k: int = 3,
                      progress: bool = False) -> Iterator[dict]:
    """Segment, speaker and summary rows for each file, in input order (see the module doc)."""
    options.check()
    by_channel = parse_speakers(options.speakers) == CHANNELS
    noted = by_channel or options.speakers is None
    for path in map(str, paths):
        try:
            if not noted and (n := read_info(path).channels) > 1:  # once per run: where the option helps, say so
                noted = True
                logging.getLogger("emovox").info("%s has %d channels, averaged to one; if each speaker has a channel "
                                                 "of their own, --speakers channels reads who spoke from them", path, n)
            wave = load_channels(path) if by_channel else load_audio(path)
            if by_channel and (len(wave) < 2 or _same_channels(wave)):
                raise BadAudio(f"{path}: {'one channel' if len(wave) < 2 else 'its channels carry the same sound'}; "
                               "--speakers channels needs each speaker on a channel of their own (give a count or "
                               "auto to tell voices apart instead)")
        except BadAudio as exc:
            msg = str(exc)
            yield {"path": path, "error": msg[len(path) + 2:] if msg.startswith(f"{path}: ") else msg}
            continue
        if by_channel:
            yield from score_channels(predictor, wave, path=path, options=options, top_k=top_k, progress=progress)
        else:
            yield from score_wave(predictor, wave, path=path, options=options, top_k=top_k, progress=progress)


def score_wave(predictor, wave: np.ndarray, *, path: str, options: ConversationOptions, top_k: int = 3,
               progress: bool = False) -> list[dict]:
    """Rows for one 16 kHz recording already in memory (the server's uploads come this way)."""
    bundle = bundle_of([s.ref for s in getattr(predictor, "sources", [])])  # an export's own detector and encoder
    spans = [_at_least(s, e, len(wave)) for s, e in find_speech(wave, options.vad, bundle)]
    waves = [wave[s:e] for s, e in spans]
    probs = segment_probs(predictor, waves, margin=options.margin, progress=progress, what=path)
    rows = []
    for (s, e), p in zip(spans, probs):
        row = predictor.row(path, p, top_k)
        rows.append({"path": path, "start": round(s / SAMPLE_RATE, 3), "end": round(e / SAMPLE_RATE, 3),
                     **{k: row[k] for k in ("label", "score", "top_k")}})
    speakers = parse_speakers(options.speakers)
    if speakers is not None and rows:
        voices = embed_segments(waves, bundle=bundle, noise=noise_floor(wave, spans, bundle=bundle))
        names = cluster_speakers(voices, speakers, weights=np.array([(e - s) / SAMPLE_RATE for s, e in spans]),
                                 moods=probs)
        rows = [{**r, "speaker": n} for r, n in zip(rows, names)]
        rows = [{k: r[k] for k in ("path", "start", "end", "speaker", "label", "score", "top_k")} for r in rows]
    return rows + summary_rows(path, rows, by_speaker=speakers is not None)


def score_channels(predictor, channels: np.ndarray, *, path: str, options: ConversationOptions, top_k: int = 3,
                   progress: bool = False) -> list[dict]:
    """Rows for a recording with one speaker per channel (``[channels, n]`` at 16 kHz; see the module doc)."""
    bundle = bundle_of([s.ref for s in getattr(predictor, "sources", [])])
    found = []  # (start, end, channel)
    for c, wave in enumerate(channels):
        if float(np.abs(wave).max(initial=0.0)) > 0.0:  # a silent channel has no one on it
            found += [(*_at_least(s, e, len(wave)), c) for s, e in find_speech(wave, options.vad, bundle)]
    found = sorted((f for f in found if not _bleed(channels, *f)), key=lambda f: (f[0], f[2]))
    waves = [channels[c, s:e] for s, e, c in found]
    probs = segment_probs(predictor, waves, margin=options.margin, progress=progress, what=path)
    rows = []
    for (s, e, c), p in zip(found, probs):
        row = predictor.row(path, p, top_k)
        rows.append({"path": path, "start": round(s / SAMPLE_RATE, 3), "end": round(e / SAMPLE_RATE, 3),
                     "speaker": f"S{c + 1}", **{k: row[k] for k in ("label", "score", "top_k")}})
    return rows + summary_rows(path, rows, by_speaker=True)


def _same_channels(channels: np.ndarray) -> bool:
    """Whether every channel is (within 1%) the first one: a mono recording stored as stereo."""
    ref = channels[0].astype(np.float64)
    scale = np.sqrt(np.mean(np.square(ref))) + 1e-12
    return all(np.sqrt(np.mean(np.square(c - ref))) < 0.01 * scale for c in channels[1:])


def _bleed(channels: np.ndarray, s: int, e: int, c: int) -> bool:
    """Whether channel ``c`` over ``[s, e)`` is :data:`BLEED_DB` or more below the loudest other channel."""
    power = np.square(channels[:, s:e], dtype=np.float64).mean(axis=1) + 1e-12
    others = np.delete(power, c)
    return bool(len(others)) and 10.0 * np.log10(others.max() / power[c]) >= BLEED_DB


def segment_probs(predictor, waves: list[np.ndarray], *, margin: float = 0.0, progress: bool = False,
                  what: str = "") -> np.ndarray:
    """Class probabilities [N, C] per segment: whole up to the model's window, longer segments in
    half-overlapping windows of that length, averaged (as ``predict`` treats long files); each
    piece framed by ``margin`` seconds of zeros either side."""
    from tqdm import tqdm

    pad = np.zeros(int(round(margin * SAMPLE_RATE)), np.float32)
    win = max(SAMPLE_RATE, int(predictor.window_seconds * SAMPLE_RATE) - 2 * len(pad))
    pieces, owner = [], []
    for i, w in enumerate(waves):
        for s, e in window_bounds(len(w), win, win // 2):
            pieces.append(np.concatenate([pad, w[s:e], pad]) if len(pad) else w[s:e])
            owner.append(i)
    out = np.zeros((len(waves), len(predictor.scheme)), dtype=np.float64)
    counts = np.zeros(len(waves))
    owner = np.array(owner, dtype=int)
    with tqdm(total=len(pieces), desc=f"segments {what}"[:60], unit="seg", disable=not progress,
              mininterval=0.5) as bar:
        for k in range(0, len(pieces), SCORE_BATCH):
            p = predictor.probs(pieces[k:k + SCORE_BATCH])
            np.add.at(out, owner[k:k + SCORE_BATCH], p)
            np.add.at(counts, owner[k:k + SCORE_BATCH], 1)
            bar.update(len(p))
    return (out / np.maximum(counts, 1)[:, None]).astype(np.float32)


def summary_rows(path: str, rows: list[dict], *, by_speaker: bool) -> list[dict]:
    """Per-speaker (when speakers were asked for) and per-file rows: each emotion's share of the
    speech time, from the segments' top labels."""
    out = []
    if by_speaker:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            groups[r["speaker"]].append(r)
        out += [{"path": path, "summary": "speaker", "speaker": name, **_shares(group)}
                for name, group in groups.items()]
    return out + [{"path": path, "summary": "file", **_shares(rows)}]


def _shares(rows: list[dict]) -> dict:
    time: dict[str, float] = defaultdict(float)
    for r in rows:
        time[r["label"]] += r["end"] - r["start"]
    total = sum(time.values())
    shares = {k: round(v / total, 4) for k, v in sorted(time.items(), key=lambda kv: -kv[1])} if total else {}
    top = next(iter(shares), None)
    return {"speech_seconds": round(total, 3), "segments": len(rows), "label": top,
            "score": shares[top] if top else None, "shares": shares}


def _at_least(s: int, e: int, n: int) -> tuple[int, int]:
    """Widen a segment shorter than the shortest clip any model accepts (0.1 s) around its centre."""
    need = int(np.ceil(MIN_SECONDS * SAMPLE_RATE))
    if e - s >= need or n < need:
        return s, e
    s = max(0, min((s + e - need) // 2, n - need))
    return s, s + need
