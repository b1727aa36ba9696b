"""Who speaks when: one voice embedding per speech segment, clustered into speakers.

The encoder is Resemblyzer's GE2E speaker encoder (a 3-layer LSTM over 40 mel bands, 256-d
embeddings, trained for speaker verification on VoxCeleb and LibriSpeech): its weights ship inside
its registry package (17 MB), so it installs hash-pinned and runs offline on torch; an export made
with ``--conversation`` carries it as ONNX for the runtime install (``voice_models``). Its mel front
end and the 1.6 s pieces a segment is embedded in (their embeddings averaged) are Resemblyzer's,
redone in numpy so that both run the same code.
Background noise is taken out of the mel bands first: its level per band is the median over the
recording's frames outside every speech segment, and twice that is subtracted from each segment's
mel power (spectral subtraction, floored at 1% of the band). GE2E's bands are not logged, so a
low hiss fills the bands a quiet turn leaves empty and pulls its embedding towards the noise; on
assembled RAVDESS conversations with hiss 35 dB below the speech this took same-gender speaker
confusion from 0.149 back to 0.084, its level without hiss (benchmarks/NOTES.md).
Embeddings are centred on the recording's mean (what all its segments share, the room and the
channel, drops out), L2-normalised, reduced to their main directions (PCA, ``2k`` but at least 4
dimensions for ``k`` speakers) and clustered with k-means (10 starts, seeded; ``kmeans``): on
assembled RAVDESS conversations that split speakers best among agglomerative (average, complete,
Ward), spectral and k-means with and without the reduction (benchmarks/NOTES.md). With ``auto`` the count (2 to 8) is
the one with the best silhouette; one speaker when the best split's silhouette is low or its two
closest voices are alike, unless two voices are heard taking turns (see Turns below). Speakers are named ``S1, S2, ...`` in order of first appearance.
Moods: on emotional speech one voice's moods can lie further apart in GE2E's space than two voices
of the same gender, and k-means then splits the moods. Given the segments' emotion probabilities
(the conversation path has them before it clusters), each segment's similarity to the others is
also read relative to the mood they were in: from similarity to a segment, the segment's mean
similarity to every segment of that emotion (weighted by the probabilities) is taken off, so what
is left says which of the angry (or sad, ...) segments sound most like this one. k-means then runs
on the main directions of both views side by side (:func:`mood_features`). On assembled same-gender
RAVDESS conversations this cut the wrongly assigned segments by a quarter to a half
(benchmarks/NOTES.md); where each speaker keeps to emotions of their own, the plain view keeps
them apart.
Turns: the split is then read along the recording's order (``speaker_turns``): a hidden Markov
model whose turn-taking odds are learnt from the recording replaces the k-means split only where
the order explains the recording better than even odds (two same-gender actors taking turns:
wrongly assigned segments 0.081 -> 0.008 on unseen actors; segments in no order: unchanged).
Where ``auto``'s silhouette hears one voice, a two-way split the turn model takes with turn-taking
odds (``speaker_turns.alternate``) is two speakers: same-gender pairs are often too alike for the
silhouette.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.audio import SAMPLE_RATE
from ..errors import BadConfig
from ..models.backbones.front_end import power_spectrum
from .kmeans import kmeans, pca, silhouette_cosine
from .speaker_turns import alternate, first_seen, turn_split
from .voice_models import INSTALL_HINT, onnx_session, speaker_files

MAX_AUTO_SPEAKERS = 8
TURN_STARTS = 7  # seeded single k-means starts the turn model also begins from (speaker_turns)
MOOD_EXACT_MAX = 2000  # segments (about 90 minutes of conversation): above, mood_features works on low rank
PARTIALS_PER_SECOND = 1.3  # Resemblyzer's default: 1.6 s partials every 0.77 s
# With ``auto``: below this silhouette no split separates voices, and the recording is one speaker.
MIN_SILHOUETTE = 0.1
# ... and two clusters whose raw (uncentred) centres are this similar (cosine) are one voice. On
# acted emotional speech one actor's moods can be as far apart as two actors. Chosen on recordings of
# actors 01-12 with the noise floor taken off (24 of one actor, 66 pairs, 12 trios; the count right
# for 96% / 70% / 25% of them against 13% / 77% / 25% at 0.9) and confirmed on 13-16 and EMOVO
# (benchmarks/NOTES.md): one expressive speaker is now kept whole, but two voices of the same gender
# are often merged; give the count when it is known.
SAME_VOICE = 0.8
N_FFT, HOP, MELS = 400, 160, 40  # Resemblyzer's mel front end: 25 ms windows every 10 ms, 40 bands
PARTIAL_FRAMES = 160  # 1.6 s partials
TARGET_DBFS = -30.0  # quieter segments are raised to this RMS level before embedding
OVER_SUBTRACT, SPECTRAL_FLOOR = 2.0, 0.01  # the noise floor's multiple taken off, and the share of a band kept
MIN_NOISE_FRAMES = 50  # less non-speech than 0.5 s: no noise estimate, nothing subtracted
NOISE_FRAMES = 6000  # the estimate reads at most 60 s of the pauses, spread over the recording
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic, as librosa's STFT window
_LOCK = threading.Lock()
_ENCODERS: dict[Any, "VoiceEncoder"] = {}


CHANNELS = "channels"  # one speaker per channel (a call recorded with each party on its own channel)


def parse_speakers(value: str | int | None) -> int | str | None:
    """``None``, a count (1 to 32), ``"auto"`` or ``"channels"`` from what a user typed.

    Raises:
        BadConfig: anything else, naming the value and what is valid.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() in ("auto", CHANNELS):
        return value.strip().lower()
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= 32:
        raise BadConfig(f"--speakers {value!r}: give a count from 1 to 32, auto, or channels (one speaker per "
                        "channel)")
    return n


class VoiceEncoder:
    """GE2E as the conversation path runs it: mel partials [B, 160, 40] -> L2-normalised
    embeddings [B, 256], by onnxruntime from an export's bundle or by Resemblyzer's torch module;
    ``mel_filters`` [40, 201] is the filter bank its mel front end uses."""

    def __init__(self, mel_filters: np.ndarray, run: Callable[[np.ndarray], np.ndarray], net: Any = None) -> None:
        self.mel_filters = np.asarray(mel_filters, dtype=np.float32)
        self.run = run
        self.net = net  # the torch module (what ``export --conversation`` exports), None for ONNX


def voice_encoder(bundle: Path | None = None) -> VoiceEncoder:
    """The speaker encoder of an export's bundle (ONNX), else Resemblyzer's, loaded once per process.

    Raises:
        BadConfig: no bundle and Resemblyzer (or what it imports) is not installed; the message says how.
    """
    files = speaker_files(bundle)
    with _LOCK:
        if files not in _ENCODERS:
            _ENCODERS[files] = _onnx_encoder(*files) if files else _torch_encoder()
        return _ENCODERS[files]


def _onnx_encoder(graph: Path, mel_filters: Path) -> VoiceEncoder:
    session = onnx_session(graph)
    return VoiceEncoder(np.load(mel_filters), lambda mels: session.run(["embeddings"], {"mels": mels})[0])


def _torch_encoder() -> VoiceEncoder:
    """Resemblyzer's GE2E network with the weights inside its wheel, built here rather than imported:
    the package's ``__init__`` imports librosa (2 s of numba) for mel filters that transformers'
    ``mel_filter_bank`` makes the same way (Slaney scale and norm)."""
    spec = importlib.util.find_spec("resemblyzer")
    weights = Path(spec.origin).parent / "pretrained.pt" if spec and spec.origin else None
    missing = "resemblyzer" if weights is None or not weights.is_file() else None
    try:
        import torch
        from transformers.audio_utils import mel_filter_bank
    except ImportError as exc:
        missing = exc.name
    if missing:
        raise BadConfig(f"--speakers needs Resemblyzer ({missing} is missing): score an export made with "
                        f"`emovox export RUN --out DIR --conversation`, or {INSTALL_HINT}")

    class GE2E(torch.nn.Module):  # resemblyzer.VoiceEncoder's layers and forward
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(MELS, 256, 3, batch_first=True)
            self.linear = torch.nn.Linear(256, 256)
            self.relu = torch.nn.ReLU()

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True)

    net = GE2E()
    net.load_state_dict(torch.load(weights, map_location="cpu")["model_state"], strict=False)
    net.eval()

    def run(mels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(mels)).numpy()

    filters = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=MELS, min_frequency=0.0,
                              max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                              mel_scale="slaney")
    return VoiceEncoder(filters.T, run, net)


def mel_spectrogram(wave: np.ndarray, mel_filters: np.ndarray) -> np.ndarray:
    """Resemblyzer's ``wav_to_mel_spectrogram`` (librosa's centred, zero-padded 25 ms power STFT
    every 10 ms through 40 mel bands, not logged), [frames, 40]."""
    power = power_spectrum(wave, N_FFT, HOP, _HANN, pad_mode="constant")
    return (power @ mel_filters.T.astype(np.float64)).astype(np.float32)


def louder(wave: np.ndarray) -> np.ndarray:
    """Resemblyzer's ``normalize_volume(wave, -30, increase_only=True)``: quiet segments raised to
    -30 dBFS RMS, louder ones left alone."""
    gain = volume_gain(wave)
    return wave if gain == 1.0 else (wave * gain).astype(np.float32)


def volume_gain(wave: np.ndarray) -> float:
    """The amplitude factor :func:`louder` applies (1.0 for a loud or silent wave)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    if rms <= 0.0:
        return 1.0
    change = TARGET_DBFS - 20.0 * np.log10(rms)
    return 1.0 if change < 0 else float(10 ** (change / 20))


def noise_floor(wave: np.ndarray, spans: list[tuple[int, int]], *, bundle: Path | None = None) -> np.ndarray | None:
    """The recording's background noise as GE2E's mel power per band [40], at the recording's own
    level: the median over the frames of its pauses (everything outside ``spans``, the speech
    segments), at most ``NOISE_FRAMES`` of them taken evenly over the pauses; None when the pauses
    hold less than ``MIN_NOISE_FRAMES`` frames."""
    gaps, prev = [], 0
    for s, e in [*spans, (len(wave), len(wave))]:
        if s - prev >= N_FFT:
            gaps.append((prev, s))
        prev = max(prev, e)
    frames = [s + k * HOP for s, e in gaps for k in range((e - s - N_FFT) // HOP + 1)]
    if len(frames) < MIN_NOISE_FRAMES:
        return None
    pick = np.asarray(frames)[np.linspace(0, len(frames) - 1, min(len(frames), NOISE_FRAMES)).astype(int)]
    x = np.ascontiguousarray(wave, dtype=np.float32)
    windows = np.stack([x[k:k + N_FFT] for k in pick]).astype(np.float64) * _HANN
    power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
    return np.median(power @ voice_encoder(bundle).mel_filters.T.astype(np.float64), axis=0)


def partial_starts(n_samples: int, rate: float = PARTIALS_PER_SECOND, min_coverage: float = 0.75) -> list[int]:
    """First mel frame of each 1.6 s partial, as Resemblyzer's ``compute_partial_slices``: one
    every ``1 / rate`` s, the last one kept when the wave covers ``min_coverage`` of it."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / rate) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    if len(starts) > 1 and (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP) < min_coverage:
        starts.pop()
    return starts


def embed_segments(waves: list[np.ndarray], *, bundle: Path | None = None, rate: float = PARTIALS_PER_SECOND,
                   batch: int = 64, noise: np.ndarray | None = None) -> np.ndarray:
    """One L2-normalised 256-d voice embedding per 16 kHz wave, [N, 256]: Resemblyzer's
    ``embed_utterance`` (1.6 s partials, their embeddings averaged), with the partials of all
    segments run through the encoder together in batches rather than one segment per call.
    ``noise``: the recording's :func:`noise_floor`, taken off each segment's mel power first."""
    enc = voice_encoder(bundle)
    mels, owner = [], []
    for i, w in enumerate(waves):
        gain = volume_gain(w)
        w = louder(np.asarray(w, dtype=np.float32))
        starts = partial_starts(len(w), rate)
        end = (starts[-1] + PARTIAL_FRAMES) * HOP
        if end >= len(w):
            w = np.pad(w, (0, end - len(w)))
        mel = mel_spectrogram(w, enc.mel_filters)
        if noise is not None:
            clean = mel - (OVER_SUBTRACT * gain ** 2 * noise).astype(np.float32)
            mel = np.maximum(clean, SPECTRAL_FLOOR * mel)
        mels += [mel[s:s + PARTIAL_FRAMES] for s in starts]
        owner += [i] * len(starts)
    out = np.zeros((len(waves), 256), dtype=np.float64)
    owner_a = np.array(owner, dtype=int)
    starts = range(0, len(mels), batch)
    # an ONNX encoder's session runs on one thread: its batches go side by side, one per core
    workers = 1 if enc.net is not None else max(1, min(len(starts), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for k, emb in zip(starts, pool.map(lambda k: enc.run(np.stack(mels[k:k + batch])), starts)):
            np.add.at(out, owner_a[k:k + batch], emb)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def cluster_speakers(embeddings: np.ndarray, speakers: int | str, *, weights: np.ndarray | None = None,
                     moods: np.ndarray | None = None) -> list[str]:
    """Speaker names ``S1, S2, ...`` per embedding, numbered in order of first appearance.

    Args:
        embeddings: [N, D] L2-normalised, in time order.
        speakers: a count, or ``"auto"`` (1 to :data:`MAX_AUTO_SPEAKERS`, by silhouette; where
            that finds one voice, two if a two-way split is taken by the turn model and its
            speakers take turns, ``speaker_turns.alternate``).
        weights: segment durations; with ``auto`` the silhouette is weighted by them so that
            short, noisy segments do not decide the count.
        moods: [N, C] the segments' emotion probabilities: the split also reads each voice
            relative to its mood (:func:`mood_features`). With ``auto`` the count is chosen
            without them and the split for that count made with them.
    """
    n = len(embeddings)
    if n == 0:
        return []
    x = _centred(embeddings)
    if speakers != "auto":
        return _in_order(_split(x, min(int(speakers), n), moods, None)[0])
    ids = _auto(x, embeddings, weights)
    k = len(np.unique(ids))
    if k >= 2:
        return _in_order(_split(x, k, moods, ids)[0])
    ids, trans = _split(x, 2, moods, None)  # one voice by its sound: do two take turns?
    return _in_order(ids if trans is not None and alternate(trans) else np.zeros(n, dtype=int))


def _split(x: np.ndarray, k: int, moods: np.ndarray | None,
           plain: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``k`` speakers of the centred embeddings: k-means on the voices (beside their moods where
    given), refined by the turn model; with the turn model's odds where it was taken."""
    n = len(x)
    if k < 2 or n < 2:
        return np.zeros(n, dtype=int), None
    voices = _reduced(x, k)
    plain = kmeans(voices, k, n_init=10, seed=0) if plain is None else plain
    if moods is not None and n > k + 1:
        y = mood_features(x, moods, max(4, 2 * k))
        ids = kmeans(y, k, n_init=10, seed=0)
    else:
        y, ids = voices, plain
    starts = [plain] + [kmeans(y, k, n_init=1, seed=seed) for seed in range(1, TURN_STARTS + 1)]
    found = turn_split(y, ids, k, starts=starts)
    return (ids, None) if found is None else found


def mood_features(x: np.ndarray, moods: np.ndarray, dims: int) -> np.ndarray:
    """Each segment's voice [N, 2 * dims]: the main directions of the segments' similarities as they
    are, beside those of the similarities relative to mood, each L2-normalised per segment.

    ``x`` [N, D]: centred, normalised embeddings; ``moods`` [N, C]: emotion probabilities. The
    relative similarity of segments i and j is ``x_i . x_j`` less ``sum_c p_jc m_ic``, where
    ``m_ic`` is i's mean similarity to the other segments weighted by their probability of emotion c.
    Up to :data:`MOOD_EXACT_MAX` segments the N x N matrices are decomposed as they are (each
    segment's similarity to itself left out); longer recordings use their low rank (D + C) and
    leave out the mean self-similarity instead, so time and memory stay linear in N.
    """
    p = np.asarray(moods, dtype=np.float64)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    x = np.asarray(x, dtype=np.float64)
    own = (x * x).sum(axis=1)  # each segment's similarity to itself
    towards = x @ (x.T @ p) - own[:, None] * p  # [N, C]: summed similarity to the others, per emotion
    mean = towards / np.maximum(p.sum(axis=0, keepdims=True) - p, 1e-9)  # i's mean similarity to emotion c
    dims = min(dims, len(x) - 1)
    if len(x) <= MOOD_EXACT_MAX:
        sim = x @ x.T
        plain, relative = _spectral(sim, dims), _spectral(sim - mean @ p.T, dims)
    else:
        plain = _low_rank_spectral(x, x, float(own.mean()), dims)
        relative = _low_rank_spectral(np.hstack([x, -mean]), np.hstack([x, p]),
                                      float((own - (mean * p).sum(axis=1)).mean()), dims)
    return np.hstack([_unit(plain), _unit(relative)])


def _spectral(a: np.ndarray, dims: int) -> np.ndarray:
    """The top ``dims`` eigenvectors of the symmetrised ``a`` (diagonal left out), scaled by the
    square roots of their eigenvalues (negative ones as 0)."""
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0.0)
    values, vectors = np.linalg.eigh(a)
    return vectors[:, -dims:] * np.sqrt(np.maximum(values[-dims:], 0.0))


def _low_rank_spectral(a: np.ndarray, b: np.ndarray, shift: float, dims: int) -> np.ndarray:
    """As :func:`_spectral` for ``(a b^T + b a^T) / 2 - shift * I`` ([N, r] factors), exactly, without
    forming the N x N matrix: its eigenvectors lie in the span of ``[a b]``."""
    q, r = np.linalg.qr(np.hstack([a, b]))
    k = a.shape[1]
    swap = np.zeros((2 * k, 2 * k))
    swap[:k, k:] = swap[k:, :k] = np.eye(k) / 2
    small = r @ swap @ r.T
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    return (q @ vectors[:, -dims:]) * np.sqrt(np.maximum(values[-dims:] - shift, 0.0))


def _unit(y: np.ndarray) -> np.ndarray:
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def _centred(x: np.ndarray) -> np.ndarray:
    if len(x) < 2:
        return x
    c = x - x.mean(axis=0, keepdims=True)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-8)


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) < 2:
        return np.zeros(len(x), dtype=int)
    return kmeans(_reduced(x, k), k, n_init=10, seed=0)


def _reduced(x: np.ndarray, k: int) -> np.ndarray:
    dims = min(max(4, 2 * k), len(x) - 1, x.shape[1])
    if dims >= k:  # the speaker directions dominate a recording's variance; the rest is mostly mood
        return pca(x, dims)
    return x


def _auto(x: np.ndarray, raw: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if len(x) < 3:
        return np.zeros(len(x), dtype=int)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    best, best_score = np.zeros(len(x), dtype=int), MIN_SILHOUETTE
    for k in range(2, min(MAX_AUTO_SPEAKERS, len(x) - 1) + 1):
        ids = _kmeans(x, k)
        if len(np.unique(ids)) < k or _closest_centres(raw, ids) > SAME_VOICE:
            break  # splitting further separates one voice
        score = float(np.average(silhouette_cosine(x, ids), weights=w))
        if score > best_score:
            best, best_score = ids, score
    return best


def _closest_centres(x: np.ndarray, ids: np.ndarray) -> float:
    """The highest cosine similarity between two cluster centres."""
    centres = np.stack([x[ids == c].mean(axis=0) for c in np.unique(ids)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sim = centres @ centres.T
    np.fill_diagonal(sim, -1.0)
    return float(sim.max())


def _in_order(ids: np.ndarray) -> list[str]:
    return [f"S{i + 1}" for i in first_seen(ids)]
