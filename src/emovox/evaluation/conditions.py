"""Stress conditions: named, seeded ways to degrade a 16 kHz clip in memory (noise, babble,
reverberation, telephone band, codecs, gain, clipping, resampling chains).

A condition is named by what it does, with its parameter in the name (``white-10dB``,
``reverb-0.6s``, ``mp3-16k``), so a user can ask for any value (``--conditions white-5dB``), and a
family name (``white``) stands for its default values. Every function takes a float32 wave and
returns one of the same length; nothing is written to disk (codecs round-trip through memory).

Noise is mixed at an SNR measured over the whole clip: ``10 log10(P_clip / P_noise)``, with P the
mean square — the usual definition when a degradation is made outside a toolkit.
"""
from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import soxr
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq
from scipy.signal import butter, correlate, correlation_lags, fftconvolve, sosfilt

from ..data.audio import SAMPLE_RATE
from ..errors import BadConfig

BABBLE_TALKERS = 4        # voices summed into one babble track
TELEPHONE_BAND = (300.0, 3400.0)
TELEPHONE_RATE = 8000
# libsndfile 1.2 maps compression_level 0..1 linearly onto these constant bitrates (kbit/s):
# MPEG-2 layer III (16 kHz input) 160 -> 8, Opus 256 -> 6. Measured bitrates go into stress.json.
_MP3_KBPS = (160.0, 8.0)
_OPUS_KBPS = (256.0, 6.0)
_MAX_CODEC_DELAY = 4096   # samples searched when re-aligning a decoded clip (MP3 adds 1105)


@dataclass(frozen=True)
class Condition:
    """One degradation: its name, family and parameters (JSON-ready), as in ``stress.json``."""

    name: str
    family: str
    params: dict = field(default_factory=dict)

    def apply(self, wave: np.ndarray, *, rng: np.random.Generator, babble: "Babble | None" = None,
              exclude: str = "") -> np.ndarray:
        """The degraded copy of ``wave`` (16 kHz, same length, float32).

        ``babble`` supplies other clips' voices (family ``babble``); ``exclude`` names the clip's
        speaker, whose own voice is kept out of its babble.

        Raises:
            BadConfig: a babble condition without a babble source.
        """
        wave = np.asarray(wave, dtype=np.float32)
        if self.family in _NOISES:
            noise = _NOISES[self.family](len(wave), rng, babble, exclude)
            out = mix_at_snr(wave, noise, self.params["snr_db"])
        else:
            out = _TRANSFORMS[self.family](wave, rng, **self.params)
        return np.asarray(out, dtype=np.float32)

    def key(self, seed: int, index: int) -> np.random.Generator:
        """The generator for clip ``index``: depends on the seed, the name and the clip only, so a
        subset of conditions or clips degrades each clip exactly as the full run does."""
        return np.random.default_rng([seed, zlib.crc32(self.name.encode()), index])


# -- noise --------------------------------------------------------------------------------------
def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` with g chosen so that ``10 log10(P_signal / P(g * noise)) = snr_db``.

    Raises:
        BadConfig: the signal or the noise is all zeros (no SNR is defined).
    """
    p_signal = float(np.mean(np.square(signal, dtype=np.float64)))
    p_noise = float(np.mean(np.square(noise, dtype=np.float64)))
    if p_signal <= 0 or p_noise <= 0:
        raise BadConfig("cannot mix at an SNR: the clip or the noise is digital silence")
    gain = np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return signal + gain * noise


def white_noise(n: int, rng: np.random.Generator, *_) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator, *_) -> np.ndarray:
    """1/f power (-3 dB per octave): white noise shaped by 1/sqrt(f) in the frequency domain."""
    m = next_fast_len(max(n, 2), real=True)
    spectrum = rfft(rng.standard_normal(m))
    f = rfftfreq(m)
    f[0] = f[1]
    return irfft(spectrum / np.sqrt(f), m)[:n]


class Babble:
    """Babble made from other clips of the evaluated split, so no outside data is needed: each
    track sums :data:`BABBLE_TALKERS` clips of other speakers, each at unit power, from random
    offsets (looped to the length needed)."""

    def __init__(self, waves: Sequence[np.ndarray], speakers: Sequence[str]):
        self.waves = list(waves)
        self.speakers = list(speakers)

    def track(self, n: int, rng: np.random.Generator, exclude: str = "") -> np.ndarray:
        """A babble track of ``n`` samples without ``exclude``'s voice (when others exist)."""
        pool = [i for i, s in enumerate(self.speakers) if not exclude or s != exclude] or list(range(len(self.waves)))
        picks = rng.choice(pool, size=min(BABBLE_TALKERS, len(pool)), replace=False)
        out = np.zeros(n)
        for i in picks:
            w = np.asarray(self.waves[i], dtype=np.float64)
            w = np.tile(w, int(np.ceil(n / len(w))) + 1)
            start = int(rng.integers(0, len(self.waves[i])))
            part = w[start:start + n]
            out += part / max(np.sqrt(np.mean(part ** 2)), 1e-12)
        return out


def _babble(n: int, rng: np.random.Generator, babble: Babble | None, exclude: str) -> np.ndarray:
    if babble is None:
        raise BadConfig("babble conditions need other clips of the split (a Babble source)")
    return babble.track(n, rng, exclude)


# -- channel transforms -------------------------------------------------------------------------
def synthetic_rir(rt60: float, rng: np.random.Generator, *, sample_rate: int = SAMPLE_RATE,
                  direct_db: float = 0.0) -> np.ndarray:
    """A room impulse response: a unit direct path, then Gaussian noise whose energy decays by
    60 dB in ``rt60`` seconds (the statistical model of a diffuse late field), starting 2.5 ms
    later; ``direct_db`` sets the direct-to-reverberant energy ratio."""
    n = int(rt60 * 1.2 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)  # amplitude: -60 dB energy at t = rt60
    tail[: int(0.0025 * sample_rate)] = 0.0
    tail *= np.sqrt(10.0 ** (-direct_db / 10.0) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def reverb(wave: np.ndarray, rng: np.random.Generator, *, rt60: float) -> np.ndarray:
    """Convolve with :func:`synthetic_rir`; the tail past the clip's end is cut and the level kept."""
    wet = fftconvolve(wave.astype(np.float64), synthetic_rir(rt60, rng))[: len(wave)]
    return wet * _rms(wave) / max(_rms(wet), 1e-12)


def telephone(wave: np.ndarray, rng: np.random.Generator | None = None, *, low: float = TELEPHONE_BAND[0],
              high: float = TELEPHONE_BAND[1]) -> np.ndarray:
    """Narrow-band telephone channel: 8 kHz sampling, a 4th-order Butterworth band-pass
    300-3400 Hz (causal, as a channel is), back to 16 kHz."""
    narrow = soxr.resample(wave, SAMPLE_RATE, TELEPHONE_RATE, quality="HQ")
    sos = butter(4, [low, high], btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    return _fit(soxr.resample(sosfilt(sos, narrow), TELEPHONE_RATE, SAMPLE_RATE, quality="HQ"), len(wave))


def gsm(wave: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """A mobile call: the telephone band, then GSM 06.10 full-rate (13 kbit/s) through libsndfile."""
    narrow = soxr.resample(telephone(wave), SAMPLE_RATE, TELEPHONE_RATE, quality="HQ")
    coded = codec_round_trip(narrow, sample_rate=TELEPHONE_RATE, format="WAV", subtype="GSM610")[0]
    return _fit(soxr.resample(coded, TELEPHONE_RATE, SAMPLE_RATE, quality="HQ"), len(wave))


def codec_round_trip(wave: np.ndarray, *, format: str, subtype: str, sample_rate: int = SAMPLE_RATE,
                     level: float | None = None, constant: bool = False) -> tuple[np.ndarray, float]:
    """Encode with libsndfile into memory and decode again: the decoded wave (re-aligned to the
    input: MP3 adds an encoder delay; same length) and the bitrate in kbit/s.

    Raises:
        BadConfig: this libsndfile cannot write the format.
    """
    buf = io.BytesIO()
    kwargs = {"compression_level": level} if level is not None else {}
    if constant:
        kwargs["bitrate_mode"] = "CONSTANT"
    try:
        sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format=format, subtype=subtype, **kwargs)
        kbps = len(buf.getvalue()) * 8 / (len(wave) / sample_rate) / 1000.0
        buf.seek(0)
        decoded, rate = sf.read(buf, dtype="float32")
    except (sf.LibsndfileError, TypeError, ValueError) as exc:
        raise BadConfig(f"libsndfile {sf.__libsndfile_version__} cannot round-trip {format}/{subtype} "
                        f"({str(exc).splitlines()[0]})") from None
    if decoded.ndim > 1:
        decoded = decoded.mean(axis=1)
    if rate != sample_rate:
        decoded = soxr.resample(decoded, rate, sample_rate, quality="HQ")
    return _align(decoded, wave), kbps


def _align(decoded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Drop a codec's leading delay (the lag with the best correlation, up to 4096 samples)."""
    n = min(len(reference), len(decoded), 4 * _MAX_CODEC_DELAY)
    c = correlate(decoded[: n + _MAX_CODEC_DELAY], reference[:n], mode="full", method="fft")
    lags = correlation_lags(min(len(decoded), n + _MAX_CODEC_DELAY), n, mode="full")
    ok = (lags >= 0) & (lags <= _MAX_CODEC_DELAY)
    lag = int(lags[ok][np.argmax(c[ok])]) if ok.any() else 0
    return _fit(decoded[lag:], len(reference))


def mp3(wave: np.ndarray, rng=None, *, kbps: float) -> np.ndarray:
    return codec_round_trip(wave, format="MP3", subtype="MPEG_LAYER_III", level=_level(kbps, _MP3_KBPS),
                            constant=True)[0]


def opus(wave: np.ndarray, rng=None, *, kbps: float) -> np.ndarray:
    return codec_round_trip(wave, format="OGG", subtype="OPUS", level=_level(kbps, _OPUS_KBPS))[0]


def vorbis(wave: np.ndarray, rng=None, *, quality: float) -> np.ndarray:
    """Ogg Vorbis (variable bitrate); ``quality`` 0 is libsndfile's lowest (compression level 1)."""
    return codec_round_trip(wave, format="OGG", subtype="VORBIS", level=1.0 - quality)[0]


def aac(wave: np.ndarray, rng=None, *, kbps: float) -> np.ndarray:
    """AAC-LC at a constant ``kbps`` (what phones record and meeting tools store), by FFmpeg."""
    return aac_round_trip(wave, kbps)[0]


def aac_round_trip(wave: np.ndarray, kbps: float) -> tuple[np.ndarray, float]:
    """Encode as AAC (ADTS, in memory) with FFmpeg's encoder and decode again: the decoded wave
    (re-aligned to the input; same length) and the bitrate in kbit/s.

    Raises:
        BadConfig: PyAV (the ``formats`` extra) is not installed.
    """
    from ..data import ffmpeg_decode

    if not ffmpeg_decode.available():
        raise BadConfig(f"the aac conditions need FFmpeg: {ffmpeg_decode.INSTALL_HINT}")
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=SAMPLE_RATE)
        stream.layout, stream.bit_rate = "mono", int(kbps * 1000)
        frame = av.AudioFrame.from_ndarray(np.clip(wave, -1.0, 1.0).astype(np.float32)[None], format="fltp",
                                           layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    data = buf.getvalue()
    decoded, rate = ffmpeg_decode.decode_all(io.BytesIO(data))
    decoded = decoded.mean(axis=1)
    if rate != SAMPLE_RATE:
        decoded = soxr.resample(decoded, rate, SAMPLE_RATE, quality="HQ")
    return _align(decoded, wave), len(data) * 8 / (len(wave) / SAMPLE_RATE) / 1000.0


def bitrate(cond: Condition, wave: np.ndarray) -> float | None:
    """The bitrate (kbit/s) a codec condition gives ``wave``; None for other families."""
    if cond.family == "gsm":
        return codec_round_trip(soxr.resample(wave, SAMPLE_RATE, TELEPHONE_RATE), sample_rate=TELEPHONE_RATE,
                                format="WAV", subtype="GSM610")[1]
    if cond.family == "mp3":
        return codec_round_trip(wave, format="MP3", subtype="MPEG_LAYER_III", constant=True,
                                level=_level(cond.params["kbps"], _MP3_KBPS))[1]
    if cond.family == "opus":
        return codec_round_trip(wave, format="OGG", subtype="OPUS", level=_level(cond.params["kbps"], _OPUS_KBPS))[1]
    if cond.family == "vorbis":
        return codec_round_trip(wave, format="OGG", subtype="VORBIS", level=1.0 - cond.params["quality"])[1]
    if cond.family == "aac":
        return aac_round_trip(wave, cond.params["kbps"])[1]
    return None


def _level(kbps: float, span: tuple[float, float]) -> float:
    hi, lo = span
    return float(np.clip((hi - kbps) / (hi - lo), 0.0, 0.99))


def gain(wave: np.ndarray, rng=None, *, db: float) -> np.ndarray:
    """A level change in floating point (no clipping: see ``clip`` for saturation)."""
    return wave * 10.0 ** (db / 20.0)


def clip(wave: np.ndarray, rng=None, *, percent: float) -> np.ndarray:
    """Hard clipping at the level that ``percent`` % of the clip's samples exceed."""
    level = float(np.quantile(np.abs(wave), 1.0 - percent / 100.0))
    return np.clip(wave, -level, level)


def resample_chain(wave: np.ndarray, rng=None, *, rates: tuple[int, ...], quality: str = "QQ") -> np.ndarray:
    """Through each rate in turn (soxr at ``quality``: QQ is its quick, low-quality filter), then
    back to 16 kHz, as audio passed between tools and platforms is."""
    x, rate = wave, SAMPLE_RATE
    for r in (*rates, SAMPLE_RATE):
        x, rate = soxr.resample(x, rate, r, quality=quality), r
    return _fit(x, len(wave))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


_NOISES: dict[str, Callable] = {"white": white_noise, "pink": pink_noise, "babble": _babble}
_TRANSFORMS: dict[str, Callable] = {
    "reverb": reverb, "telephone": telephone, "gsm": gsm, "mp3": mp3, "opus": opus, "vorbis": vorbis, "aac": aac,
    "gain": gain, "clip": clip, "resample": resample_chain,
}
_NUM = r"(-?\d+(?:\.\d+)?)"
# name pattern -> (family, parameter builder); a family alone stands for its DEFAULTS entries
_PATTERNS: list[tuple[re.Pattern, str, Callable[[re.Match], dict]]] = [
    (re.compile(rf"(white|pink|babble)-{_NUM}dB"), "", lambda m: {"snr_db": float(m[2])}),
    (re.compile(rf"reverb-{_NUM}s"), "reverb", lambda m: {"rt60": float(m[1])}),
    (re.compile(r"(telephone|gsm)"), "", lambda m: {}),
    (re.compile(rf"(mp3|opus|aac)-{_NUM}k"), "", lambda m: {"kbps": float(m[2])}),
    (re.compile(rf"vorbis-q{_NUM}"), "vorbis", lambda m: {"quality": float(m[1])}),
    (re.compile(r"gain([+-]\d+(?:\.\d+)?)dB"), "gain", lambda m: {"db": float(m[1])}),
    (re.compile(rf"clip-{_NUM}pct"), "clip", lambda m: {"percent": float(m[1])}),
    (re.compile(rf"resample-{_NUM}k"), "resample", lambda m: {"rates": [int(float(m[1]) * 1000)], "quality": "HQ"}),
    (re.compile(r"resample-chain"), "resample", lambda m: {"rates": [44100, 22050, 11025], "quality": "QQ"}),
]
DEFAULTS: dict[str, tuple[str, ...]] = {
    "white": ("white-20dB", "white-10dB", "white-0dB"), "pink": ("pink-10dB", "pink-0dB"),
    "babble": ("babble-10dB", "babble-0dB"), "reverb": ("reverb-0.3s", "reverb-0.6s", "reverb-1.0s"),
    "telephone": ("telephone",), "gsm": ("gsm",), "mp3": ("mp3-16k", "mp3-8k"), "opus": ("opus-16k", "opus-8k"),
    "vorbis": ("vorbis-q0",), "gain": ("gain-30dB", "gain-10dB", "gain+20dB"), "clip": ("clip-1pct", "clip-10pct"),
    "resample": ("resample-8k", "resample-chain"),
}
# families asked for by name only (not in the default set): they need an extra install
OPTIONAL: dict[str, tuple[str, ...]] = {"aac": ("aac-32k", "aac-16k")}  # FFmpeg (the formats extra)
FAMILIES = {**DEFAULTS, **OPTIONAL}  # a family name stands for its named conditions


def condition(name: str) -> Condition:
    """The condition a name describes (``white-10dB``, ``reverb-0.6s``, ``mp3-16k``, ``gain+20dB``, ...).

    Raises:
        BadConfig: a name no family reads, or a parameter out of range.
    """
    for pattern, family, params in _PATTERNS:
        m = pattern.fullmatch(name.strip())
        if m:
            cond = Condition(name.strip(), family or m[1], params(m))
            _check(cond)
            return cond
    raise BadConfig(f"unknown stress condition {name!r}; valid: a family ({', '.join(DEFAULTS)}) or a name like "
                    "white-10dB, pink-0dB, babble-5dB, reverb-0.6s, telephone, gsm, mp3-16k, opus-8k, vorbis-q0, aac-16k, "
                    "gain-30dB, gain+20dB, clip-1pct, resample-8k, resample-chain")


def _check(c: Condition) -> None:
    p = c.params
    bad = ((c.family == "reverb" and not 0.05 <= p["rt60"] <= 5) and "rt60 must be 0.05-5 s"
           or (c.family in ("mp3", "opus", "aac") and not 6 <= p["kbps"] <= 320) and "kbps must be 6-320"
           or (c.family == "vorbis" and not 0 <= p["quality"] <= 1) and "quality must be 0-1"
           or (c.family == "clip" and not 0 < p["percent"] < 100) and "percent must be between 0 and 100"
           or (c.family == "resample" and not all(4000 <= r <= 384000 for r in p["rates"])) and "rates must be 4-384 kHz")
    if bad:
        raise BadConfig(f"stress condition {c.name!r}: {bad}")


def conditions(spec: str | Sequence[str] | None = None) -> list[Condition]:
    """Conditions from a comma-separated list (or a list) of names and family names, in order,
    without repeats; None or empty: every default condition.

    Raises:
        BadConfig: an unknown name.
    """
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec or []) if n.strip()]
    expanded = [d for n in (names or list(DEFAULTS)) for d in FAMILIES.get(n, (n,))]
    return [condition(n) for n in dict.fromkeys(expanded)]
