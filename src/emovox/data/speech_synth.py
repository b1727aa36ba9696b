"""The speech synthesizer behind the synthetic corpus (``data.synthetic``).

Clips come from a source-filter model: a Rosenberg glottal pulse train along an F0 contour,
aspiration noise, and cascaded formant resonators per syllable, with consonant-like onsets and
pauses. Each sentence has a fixed syllable/vowel pattern modelled on the CREMA-D sentence;
emotion and intensity move F0 level and range, tempo, vocal effort, spectral tilt, jitter,
shimmer, creak and breathiness away from neutral. Per-speaker voices and per-clip variation
make classes overlap, so the task is learnable but not trivial and speakers matter.

Everything is pure numpy (filters are applied in the frequency domain), and each clip is seeded
from ``(seed, actor, sentence, emotion, intensity)``, so the corpus is bit-identical whatever
the number of worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from ..errors import BadLabel
from ..labels import CREMA_EMOTIONS, CREMA_INTENSITIES
from .audio import SAMPLE_RATE

__all__ = [
    "CREMA_SENTENCES", "INTENSITY_SCALE", "SENTENCE_PATTERNS", "SpeakerVoice", "clip_filename",
    "clip_rng", "clip_specs", "speaker_voice", "synthesize_clip",
]

CREMA_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
INTENSITY_SENTENCE = "IEO"  # as in CREMA-D, the only sentence spoken at LO/MD/HI
FIRST_ACTOR = 1001
MIN_SECONDS, MAX_SECONDS = 1.25, 4.9

# Syllables as ``[onset:]VOWEL[!]`` ("!" = stressed), words separated by "|". Onsets:
# F = sibilant (s, z, sh, j), f = weak fricative (f, v, th, h), P = stop, N = sonorant (m n l w r y).
_PATTERNS = {
    "IEO": "IH | IH N:EH! f:AH | AH P:AA!",                              # It's eleven o'clock
    "TIE": "f:AE! | IH | IH F:AE! N:IY | N:AH | f:AE! P:AH",             # That is exactly what happened
    "IOM": "AY! | AA | N:AY | N:EY! | P:UW | f:AH | N:IY! P:IH",         # I'm on my way to the meeting
    "IWW": "AY | N:AH! P:ER | N:AH | f:IH! | IH | AH P:AW!",             # I wonder what this is about
    "TAI": "f:AH | EH! P:EY | IH | AO! N:OW | f:UH!",                    # The airplane is almost full
    "MTI": "N:EY! P:IY | P:AH N:AA! N:OW | IH | N:IH | P:IY | P:OW!",    # Maybe tomorrow it will be cold
    "IWL": "AY | N:UH | N:AY! | AH | N:UW! | AH N:AA! | P:AA",           # I would like a new alarm clock
    "ITH": "AY | f:IH! | AY | f:AE | AH | P:AA! P:ER | AH P:OY! N:AH",   # I think I have a doctor's appointment
    "DFA": "P:OW! | f:ER P:EH! | AH | F:AE! P:IH",                       # Don't forget a jacket
    "ITS": "AY | f:IH! | AY | F:IY! | f:IH | P:IH f:AO!",                # I think I've seen this before
    "TSI": "f:AH | F:ER! f:IH | IH | F:IH!",                             # The surface is slick
    "WSI": "N:IY | F:AA! | IH | AH | P:AH! P:AH | AH | N:IH! N:IH",      # We'll stop in a couple of minutes
}
# Adult male F1-F3 (Hz, Peterson & Barney); diphthongs glide between two monophthongs.
_VOWELS = {
    "IY": (270, 2290, 3010), "IH": (390, 1990, 2550), "EH": (530, 1840, 2480),
    "AE": (660, 1720, 2410), "AH": (640, 1190, 2390), "AA": (730, 1090, 2440),
    "AO": (570, 840, 2410), "UH": (440, 1020, 2240), "UW": (300, 870, 2240), "ER": (490, 1350, 1690),
}
_DIPHTHONGS = {"AY": ("AA", "IH"), "EY": ("EH", "IY"), "OW": ("AO", "UH"), "AW": ("AA", "UH"),
               "OY": ("AO", "IY")}
_NASAL = (280, 1150, 2300)
_F4 = 3600.0
_BANDWIDTHS = (70.0, 100.0, 140.0, 250.0)
_ONSET_SECONDS = {"": 0.0, "F": 0.085, "f": 0.06, "P": 0.065, "N": 0.05}
_TAIL = int(0.03 * SAMPLE_RATE)  # resonator ring-out kept after each segment
_HOP = 32  # samples between F0 control points
_TABLE = 512  # samples in the one-period glottal pulse tables


@dataclass(frozen=True)
class _Syllable:
    onset: str
    vowels: tuple[str, ...]
    stressed: bool


def _parse_pattern(text: str) -> tuple[tuple[_Syllable, ...], ...]:
    words = []
    for word in text.split("|"):
        syllables = []
        for token in word.split():
            onset, _, vowel = token.rpartition(":")
            stressed = vowel.endswith("!")
            vowel = vowel.rstrip("!")
            syllables.append(_Syllable(onset, _DIPHTHONGS.get(vowel, (vowel,)), stressed))
        words.append(tuple(syllables))
    return tuple(words)


SENTENCE_PATTERNS = {name: _parse_pattern(text) for name, text in _PATTERNS.items()}


@dataclass(frozen=True)
class SpeakerVoice:
    """One synthetic actor's voice; see :func:`speaker_voice`.

    Attributes:
        actor: CREMA-D style actor id (1001, 1002, ...).
        sex: "male" or "female"; actors alternate, starting with male.
        f0_base: Neutral speaking F0 in Hz.
        formant_scale: Vocal-tract scaling of every formant (shorter tract -> higher).
        tempo: Syllable-duration multiplier (above 1 = slower speaker).
        tilt_offset: Added to the spectral tilt (0 flat .. 1 steep).
        breath: Added aspiration-noise level.
        jitter: Added period jitter (fraction of a period).
        expressiveness: Multiplies every emotion's deviation from neutral.
    """

    actor: int
    sex: str
    f0_base: float
    formant_scale: float
    tempo: float
    tilt_offset: float
    breath: float
    jitter: float
    expressiveness: float


@dataclass(frozen=True)
class _Prosody:
    f0_shift: float     # semitones above the speaker's base
    f0_range: float     # semitones of accent excursion on stressed syllables
    declination: float  # semitones the baseline falls over the utterance
    final_rise: float   # semitones added at the end of the last syllable (negative falls)
    tremor: float       # semitones of 5-7 Hz F0 tremor
    tempo: float        # syllable-duration multiplier
    effort_db: float    # vocal effort: level above the noise floor and of the peak
    tilt: float         # 0 flat (tense) .. 1 steep (lax) source spectrum
    jitter: float       # std of pulse-time perturbation, fraction of a period
    shimmer: float      # std of log pulse amplitude
    breath: float       # aspiration noise relative to the voiced source
    creak: float        # alternating long/weak pulses (diplophonia)
    f1_scale: float     # jaw opening
    f2_scale: float     # lip spreading (smile)


# Each emotion's full-strength prosody (the guide: ANG high, wide, loud, tense, fast; HAP high, wide,
# rising; FEA highest, tremulous, jittery, breathy, fast; SAD low, narrow, slow, quiet, lax,
# breathy; DIS low-mid, slow, creaky; NEU mid and flat). Columns are the _Prosody fields in order.
_EMOTION_TABLE = """
NEU  0.0 2.0 2.5 -2.0 0.0 1.00  0.0 0.55 0.006 0.04 0.08 0.00 1.00 1.00
ANG  4.5 6.0 1.5 -3.5 0.0 0.80  9.0 0.15 0.012 0.06 0.03 0.05 1.08 1.00
HAP  4.0 7.0 1.5  1.5 0.0 0.88  4.0 0.40 0.007 0.04 0.06 0.00 1.04 1.06
FEA  6.0 3.5 0.5  2.5 0.8 0.80  1.0 0.50 0.030 0.09 0.25 0.00 1.00 1.02
SAD -2.5 1.0 3.0 -1.5 0.3 1.35 -7.0 0.85 0.012 0.06 0.30 0.10 0.95 0.98
DIS -1.5 3.5 3.0 -4.0 0.0 1.22 -1.0 0.65 0.025 0.10 0.10 0.45 1.00 0.97
"""
_EMOTIONS = {row.split()[0]: _Prosody(*map(float, row.split()[1:]))
             for row in _EMOTION_TABLE.strip().splitlines()}
_NEUTRAL = _EMOTIONS["NEU"]
INTENSITY_SCALE = {"LO": 0.55, "MD": 0.8, "HI": 1.15}  # XX: drawn per clip from [0.8, 1.0]


def speaker_voice(*, seed: int, index: int) -> SpeakerVoice:
    """The voice of actor ``FIRST_ACTOR + index``, a pure function of ``(seed, index)``.

    So a 2-speaker corpus holds the same first two voices as a 16-speaker one with that seed.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _code("VOICE")]))
    male = index % 2 == 0
    return SpeakerVoice(
        actor=FIRST_ACTOR + index,
        sex="male" if male else "female",
        f0_base=float(rng.uniform(98, 135) if male else rng.uniform(178, 232)),
        formant_scale=float(rng.uniform(0.94, 1.04) if male else rng.uniform(1.1, 1.2)),
        tempo=float(rng.uniform(0.9, 1.1)),
        tilt_offset=float(rng.normal(0, 0.07)),
        breath=float(rng.uniform(0.0, 0.06)),
        jitter=float(rng.uniform(0.0, 0.004)),
        expressiveness=float(rng.uniform(0.75, 1.25)),
    )


def clip_specs(sentences: Sequence[str] = CREMA_SENTENCES) -> list[tuple[str, str, str]]:
    """``(sentence, emotion, intensity)`` of every clip one actor records.

    Every sentence at every emotion with intensity XX; the intensity sentence (IEO) also at
    LO, MD and HI for the five non-neutral emotions, reproducing CREMA-D's confound.
    """
    specs = []
    for sentence in sentences:
        for emotion in CREMA_EMOTIONS:
            specs.append((sentence, emotion, "XX"))
            if sentence == INTENSITY_SENTENCE and emotion != "NEU":
                specs.extend((sentence, emotion, level) for level in ("LO", "MD", "HI"))
    return specs


def clip_filename(actor: int, sentence: str, emotion: str, intensity: str) -> str:
    """CREMA-D file name, e.g. ``1001_DFA_ANG_XX.wav``."""
    return f"{actor}_{sentence}_{emotion}_{intensity}.wav"


def clip_rng(*, seed: int, actor: int, sentence: str, emotion: str, intensity: str) -> np.random.Generator:
    """The generator for one clip: independent of every other clip and of the order of work."""
    entropy = [seed, actor, _code(sentence), _code(emotion), _code(intensity)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def synthesize_clip(
    *, emotion: str, intensity: str, speaker: SpeakerVoice, sentence: str, rng: np.random.Generator
) -> np.ndarray:
    """Synthesize one utterance of ``sentence`` spoken by ``speaker`` with an emotion.

    Args:
        emotion: One of ``CREMA_EMOTIONS``.
        intensity: One of ``CREMA_INTENSITIES``; LO/MD/HI scale the emotion's deviation from
            neutral by 0.55/0.8/1.15, XX by a random 0.8-1.0.
        speaker: The voice (see :func:`speaker_voice`).
        sentence: One of ``CREMA_SENTENCES``; fixes the syllables and vowels.
        rng: Source of all per-clip variation.

    Returns:
        float32 mono wave at ``SAMPLE_RATE``, 1.25-4.9 s long, peak in [0.3, 0.9].

    Raises:
        BadLabel: unknown emotion, intensity or sentence code.
    """
    check_codes(emotion=emotion, intensity=intensity, sentences=[sentence])
    prosody = _prosody(emotion, intensity, speaker, rng)
    events, n = _timeline(SENTENCE_PATTERNS[sentence], prosody, rng)
    f0 = _f0_contour(events, n, speaker, prosody, rng)
    source = _glottal_source(f0, n, prosody, rng)
    speech, active = _render_speech(events, source, n, speaker, prosody, rng)
    return _finish(speech, active, prosody, rng)


def _prosody(emotion: str, intensity: str, speaker: SpeakerVoice, rng: np.random.Generator) -> _Prosody:
    """Neutral moved towards the emotion by intensity and speaker, then varied per clip."""
    scale = INTENSITY_SCALE.get(intensity) or float(rng.uniform(0.8, 1.0))
    scale *= speaker.expressiveness
    target = _EMOTIONS[emotion]
    v = {f.name: getattr(_NEUTRAL, f.name) + scale * (getattr(target, f.name) - getattr(_NEUTRAL, f.name))
         for f in fields(_Prosody)}
    v["f0_shift"] += rng.normal(0, 1.0)
    v["f0_range"] = max(0.3, v["f0_range"]) * np.exp(rng.normal(0, 0.2))
    v["tempo"] = max(0.6, v["tempo"]) * speaker.tempo * np.exp(rng.normal(0, 0.07))
    v["effort_db"] += rng.normal(0, 2.0)
    v["tilt"] = float(np.clip(v["tilt"] + speaker.tilt_offset + rng.normal(0, 0.05), 0.02, 0.98))
    v["breath"] = max(0.0, v["breath"] + speaker.breath) * np.exp(rng.normal(0, 0.2))
    v["jitter"] = float(np.clip(v["jitter"] + speaker.jitter, 0.0, 0.06))
    for name in ("tremor", "shimmer", "creak"):
        v[name] = max(0.0, v[name])
    return _Prosody(**{k: float(x) for k, x in v.items()})


@dataclass(frozen=True)
class _Event:
    syllable: _Syllable
    onset_start: int  # sample where the consonant onset begins
    start: int        # nucleus (vowel) start
    end: int          # nucleus end


def _timeline(pattern: tuple[tuple[_Syllable, ...], ...], prosody: _Prosody,
              rng: np.random.Generator) -> tuple[list[_Event], int]:
    """Place onsets, nuclei and pauses; squeeze or stretch into the allowed clip length."""
    n_syllables = sum(len(word) for word in pattern)
    t, spans, i = float(rng.uniform(0.12, 0.3)), [], 0
    for w, word in enumerate(pattern):
        if w and rng.random() < 0.3:
            t += rng.uniform(0.04, 0.15) * prosody.tempo
        for syl in word:
            i += 1
            onset = _ONSET_SECONDS[syl.onset] * prosody.tempo * rng.uniform(0.8, 1.2)
            nucleus = (0.265 if syl.stressed else 0.165) * prosody.tempo * rng.uniform(0.8, 1.2)
            nucleus *= 1.35 if i == n_syllables else 1.0  # phrase-final lengthening
            spans.append((syl, t, t + onset, t + onset + nucleus))
            t += onset + nucleus
    total = t + rng.uniform(0.15, 0.35)
    k = float(np.clip(total, MIN_SECONDS, MAX_SECONDS)) / total * SAMPLE_RATE
    events = [_Event(s, round(a * k), round(b * k), round(c * k)) for s, a, b, c in spans]
    return events, round(total * k)


def _f0_contour(events: list[_Event], n: int, speaker: SpeakerVoice, prosody: _Prosody,
                rng: np.random.Generator) -> np.ndarray:
    """F0 (Hz) every ``_HOP`` samples: declining baseline, accents, final rise/fall, drift, tremor."""
    knots_t, knots_st = [0.0], [prosody.f0_shift]
    for i, ev in enumerate(events):
        base = prosody.f0_shift - prosody.declination * ev.start / n
        lo, hi = (0.6, 1.0) if ev.syllable.stressed else (0.0, 0.3)
        accent = prosody.f0_range * rng.uniform(lo, hi)
        end = base + 0.2 * accent + (prosody.final_rise if i == len(events) - 1 else 0.0)
        peak = ev.start + rng.uniform(0.3, 0.6) * (ev.end - ev.start)
        knots_t += [ev.onset_start, peak, ev.end]
        knots_st += [base + 0.3 * accent, base + accent, end]
    knots_t.append(n)
    knots_st.append(knots_st[-1])
    times = np.arange(0, n + _HOP, _HOP, dtype=np.float64)
    semitones = np.interp(times, knots_t, knots_st)
    drift = rng.normal(0, 0.35, n // 1600 + 2)
    semitones += np.interp(times, np.linspace(0, n, drift.size), drift)
    rate = rng.uniform(5.0, 7.0)
    semitones += prosody.tremor * np.sin(2 * np.pi * rate * times / SAMPLE_RATE + rng.uniform(0, 6.3))
    return np.clip(speaker.f0_base * 2.0 ** (semitones / 12.0), 55.0, 550.0)


@dataclass(frozen=True)
class _Source:
    """The glottal excitation of one clip, rendered on demand for any span of samples."""

    pulses: np.ndarray       # pulse instants in (fractional) samples, ascending
    gain: np.ndarray         # per-pulse amplitude: shimmer, creak, 1/period; unit-RMS overall
    steps: np.ndarray        # pulse-table positions advanced per sample, per pulse
    flow_table: np.ndarray
    slope_table: np.ndarray
    noise_gain: float        # aspiration level (breath), for unit-RMS noise


def _glottal_source(f0: np.ndarray, n: int, prosody: _Prosody, rng: np.random.Generator) -> _Source:
    """Place glottal pulses along ``f0`` with jitter, shimmer and creak.

    Gains are set so the voiced excitation has unit RMS and the aspiration (noise pulsing with
    the glottal flow) sits at the breath level relative to it.
    """
    phase = np.concatenate([[0.0], np.cumsum(f0[:-1]) * (_HOP / SAMPLE_RATE)])
    t = np.interp(np.arange(1.0, np.floor(phase[-1])), phase, np.arange(f0.size) * float(_HOP))
    period = np.gradient(t)
    t = t + prosody.jitter * period * np.clip(rng.standard_normal(t.size), -2.5, 2.5)
    t[1::2] += 0.2 * prosody.creak * period[1::2]
    t = np.sort(t[(t >= 0) & (t < n - 1)])
    period = np.diff(t, append=t[-1] + period[-1])
    gain = np.exp(prosody.shimmer * np.clip(rng.standard_normal(t.size), -3, 3)) / period
    gain[1::2] *= 1.0 - 0.6 * prosody.creak
    flow_table, slope_table = _pulse_tables(prosody.tilt)
    power = np.sum(gain**2 * period) / np.sum(period) * np.mean(slope_table**2)
    noise_power = np.mean((0.25 + flow_table) ** 2) / 12.0  # of (uniform - 0.5) * (0.25 + flow)
    return _Source(t, gain / np.sqrt(power), _TABLE / period, flow_table, slope_table,
                   prosody.breath / float(np.sqrt(noise_power)))


def _excitation(source: _Source, start: int, end: int, rng: np.random.Generator) -> np.ndarray:
    """Voiced pulses plus aspiration noise for samples ``start..end-1``."""
    samples = np.arange(start, end)
    k = np.searchsorted(source.pulses, samples, side="right") - 1
    inside = (k >= 0) & (k < source.pulses.size - 1)
    k = np.clip(k, 0, source.pulses.size - 2)
    pos = np.minimum(((samples - source.pulses[k]) * source.steps[k]).astype(np.intp), _TABLE - 1)
    voiced = source.slope_table[pos] * source.gain[k]
    noise = (rng.random(samples.size) - 0.5) * (0.25 + source.flow_table[pos]) * source.noise_gain
    return (voiced + noise) * inside


def _pulse_tables(tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """One period of Rosenberg glottal flow (peak 1) and of its smoothed derivative.

    Tilt sets the pulse shape (longer, softer closing when lax) and a return-phase low-pass
    (time constant 0.4%..6% of the period); together they set the source's spectral slope.
    """
    phi = np.arange(_TABLE) / _TABLE
    open_phase, closing = 0.36 + 0.12 * tilt, 0.08 + 0.16 * tilt
    opening = 0.5 * (1.0 - np.cos(np.pi * phi / open_phase))
    closing_part = np.cos(0.5 * np.pi * (phi - open_phase) / closing)
    flow = np.where(phi < open_phase, opening, np.where(phi < open_phase + closing, closing_part, 0.0))
    harmonic = 2j * np.pi * np.arange(_TABLE // 2 + 1)
    return_phase = 0.004 * 15.0 ** tilt
    slope = np.fft.irfft(np.fft.rfft(flow) * harmonic / (1.0 + harmonic * return_phase), _TABLE)
    return flow, slope


def _render_speech(events: list[_Event], source: _Source, n: int, speaker: SpeakerVoice,
                   prosody: _Prosody, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Filter the source through each syllable's vowels and add consonant onsets.

    Returns the speech and a mask of the samples inside syllables (for level measurement).
    """
    out = np.zeros(n + _TAIL)
    active = np.zeros(n, dtype=bool)
    for i, ev in enumerate(events):
        gain = (1.0 if ev.syllable.stressed else 0.72) * rng.uniform(0.85, 1.15)
        gain *= 0.8 if i == len(events) - 1 else 1.0
        nucleus = gain * _nucleus(ev, source, speaker, prosody, rng)
        out[ev.start: ev.start + nucleus.size] += nucleus
        active[ev.onset_start: ev.end] = True
        if ev.start > ev.onset_start:
            onset = _onset(ev, source, speaker, rng) * _rms(nucleus)
            out[ev.onset_start: ev.onset_start + onset.size] += onset
    return out[:n], active


def _nucleus(ev: _Event, source: _Source, speaker: SpeakerVoice, prosody: _Prosody,
             rng: np.random.Generator) -> np.ndarray:
    """The vowel: enveloped source through F1-F4; diphthongs crossfade between two targets."""
    length = ev.end - ev.start
    x = _excitation(source, ev.start, ev.end, rng) * _envelope(length, attack=0.02, release=0.04)
    bandwidths = np.array(_BANDWIDTHS) * (1.0 + 1.5 * prosody.breath)
    filters = []
    for vowel in ev.syllable.vowels:
        f1, f2, f3 = _VOWELS[vowel]
        formants = np.array([f1 * prosody.f1_scale, f2 * prosody.f2_scale, f3, _F4])
        formants *= speaker.formant_scale * rng.uniform(0.97, 1.03)
        filters.append(_resonators(formants, bandwidths))
    outs = _filter(x, filters, tail=_TAIL)
    if len(outs) == 1:
        return outs[0]
    fade = np.clip(np.linspace(-0.5, 1.5, length + _TAIL), 0.0, 1.0)
    return outs[0] * (1.0 - fade) + outs[1] * fade


def _onset(ev: _Event, source: _Source, speaker: SpeakerVoice, rng: np.random.Generator) -> np.ndarray:
    """A consonant-like onset at unit-relative level: frication, a stop burst, or a nasal murmur."""
    length = ev.start - ev.onset_start
    kind, s = ev.syllable.onset, speaker.formant_scale
    if kind == "N":
        x = _excitation(source, ev.onset_start, ev.start, rng) * _envelope(length, attack=0.015, release=0.01)
        filt, level = _resonators(np.array([*_NASAL, _F4]) * s, np.array([100.0, 150, 200, 300])), 0.3
    elif kind == "P":
        closure = length * 2 // 3
        burst = np.exp(-np.maximum(np.arange(length) - closure, 0) / (0.006 * SAMPLE_RATE))
        x = (rng.random(length) - 0.5) * burst * (np.arange(length) >= closure)
        filt, level = _highpassed(np.array([2500.0 * s]), np.array([1500.0]), order=1), 0.25
    elif kind == "F":
        x = (rng.random(length) - 0.5) * _envelope(length, attack=0.02, release=0.01)
        filt, level = _highpassed(np.array([min(4800.0 * s, 7000.0)]), np.array([1500.0]), order=2), 0.25
    else:
        x = (rng.random(length) - 0.5) * _envelope(length, attack=0.02, release=0.01)
        filt, level = _highpassed(np.array([2200.0 * s]), np.array([3000.0]), order=1), 0.1
    y = _filter(x, [filt], tail=_TAIL)[0]
    return level * y / _rms(y) * np.sqrt(min(1.0, length / (0.06 * SAMPLE_RATE)))


def _finish(speech: np.ndarray, active: np.ndarray, prosody: _Prosody, rng: np.random.Generator) -> np.ndarray:
    """Apply vocal effort over a noise floor and peak-normalise to a random level in [0.3, 0.9]."""
    speech = speech / _rms(speech[active]) * 10.0 ** (prosody.effort_db / 20.0)
    white = rng.random(speech.size + 2) - 0.5
    floor = white[2:] + 0.8 * white[1:-1] + 0.4 * white[:-2]  # gently low-tilted hiss
    speech = speech + floor / _rms(floor) * 10.0 ** (rng.uniform(-52.0, -38.0) / 20.0)
    level = float(np.clip(0.5 * 10.0 ** (prosody.effort_db / 40.0) * np.exp(rng.normal(0, 0.2)), 0.3, 0.9))
    return (speech * (level / np.abs(speech).max())).astype(np.float32)


# --- filters as (numerator, denominator) polynomials in z^-1, applied by FFT with a ring-out tail

Filter = tuple[np.ndarray, np.ndarray]


def _resonators(freqs: np.ndarray, bandwidths: np.ndarray) -> Filter:
    """Cascade of 2nd-order resonators (Klatt style, unity gain at DC)."""
    r = np.exp(-np.pi * bandwidths / SAMPLE_RATE)
    c = -2.0 * r * np.cos(2 * np.pi * freqs / SAMPLE_RATE)
    den = np.ones(1)
    for ci, ri in zip(c, r):
        den = np.convolve(den, [1.0, ci, ri * ri])
    return np.array([den.sum()]), den


def _highpassed(freqs: np.ndarray, bandwidths: np.ndarray, *, order: int) -> Filter:
    """Resonators followed by ``order`` first differences (remove the low end of noise bursts)."""
    num, den = _resonators(freqs, bandwidths)
    for _ in range(order):
        num = np.convolve(num, [1.0, -1.0])
    return num, den


def _filter(x: np.ndarray, filters: Sequence[Filter], *, tail: int) -> list[np.ndarray]:
    """``x`` through each filter; each output has ``len(x) + tail`` samples.

    The frequency responses are exact; zero padding (at least 256 samples past the tail)
    keeps the circular wrap-around of the decaying impulse response negligible.
    """
    n = x.size + tail
    n_fft = -(-(n + 256) // 1024) * 1024
    spectrum = np.fft.rfft(x, n_fft)
    return [np.fft.irfft(spectrum * (np.fft.rfft(num, n_fft) if num.size > 1 else num[0])
                         / np.fft.rfft(den, n_fft), n_fft)[:n]
            for num, den in filters]


def _envelope(length: int, *, attack: float, release: float) -> np.ndarray:
    """Flat envelope with raised-cosine attack and release (seconds, shortened to fit)."""
    env = np.ones(length)
    a = min(int(attack * SAMPLE_RATE), length // 2)
    r = min(int(release * SAMPLE_RATE), length - a)
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / max(a, 1))
    env[length - r:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / max(r, 1))
    return env


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0, 1e-12)


def _code(text: str) -> int:
    """A code as a stable non-negative integer for seeding (never Python's salted hash)."""
    return int.from_bytes(text.encode("utf-8"), "big")


# --- the corpus ------------------------------------------------------------------------------


def check_codes(*, emotion: str, intensity: str, sentences: Sequence[str]) -> None:
    if emotion not in CREMA_EMOTIONS:
        raise BadLabel(f"unknown emotion code {emotion!r}; valid: {', '.join(CREMA_EMOTIONS)}")
    if intensity not in CREMA_INTENSITIES:
        raise BadLabel(f"unknown intensity code {intensity!r}; valid: {', '.join(CREMA_INTENSITIES)}")
    for sentence in sentences:
        if sentence not in SENTENCE_PATTERNS:
            raise BadLabel(f"unknown sentence code {sentence!r}; valid: {', '.join(CREMA_SENTENCES)}")
