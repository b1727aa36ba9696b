"""Who speaks when: one voice embedding per speech segment, clustered into speakers.

The encoder is Resemblyzer's GE2E speaker encoder (a 3-layer LSTM over 40 mel bands, 256-d
embeddings, trained for speaker verification on VoxCeleb and LibriSpeech): its weights ship inside
its registry package (17 MB), so it installs hash-pinned and runs offline on the torch emovox already
has. A segment is embedded in 1.6 s pieces whose embeddings are averaged (long segments in pieces).
Embeddings are centred on the recording's mean (what all its segments share, the room and the
channel, drops out), L2-normalised, reduced to their main directions (PCA, ``2k`` but at least 4
dimensions for ``k`` speakers) and clustered with scikit-learn's k-means (10 starts, seeded): on
assembled RAVDESS conversations that split speakers best among agglomerative (average, complete,
Ward), spectral and k-means with and without the reduction (benchmarks/NOTES.md). With ``auto`` the count (2 to 8) is
the one with the best silhouette; one speaker when the best split's silhouette is low or its two
closest voices are alike. Speakers are named ``S1, S2, ...`` in order of first appearance.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import BadConfig

MAX_AUTO_SPEAKERS = 8
PARTIALS_PER_SECOND = 1.3  # Resemblyzer's default: 1.6 s partials every 0.77 s
# With ``auto``: below this silhouette no split separates voices, and the recording is one speaker.
MIN_SILHOUETTE = 0.1
# ... and two clusters whose raw (uncentred) centres are this similar (cosine) are one voice. On
# acted emotional speech one actor's emotions can be as far apart as two actors (0.59-0.82 for one
# RAVDESS actor split in two, 0.50-0.82 for two actors), so ``auto`` can split one expressive
# speaker in two: give the count when it is known.
SAME_VOICE = 0.9
_LOCK = threading.Lock()
_ENCODER = None


def parse_speakers(value: str | int | None) -> int | str | None:
    """``None``, a count (1 to 32) or ``"auto"`` from what a user typed.

    Raises:
        BadConfig: anything else, naming the value and what is valid.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= 32:
        raise BadConfig(f"--speakers {value!r}: give a count from 1 to 32, or auto")
    return n


def voice_encoder():
    """Resemblyzer's GE2E encoder on the CPU, loaded once per process.

    Raises:
        BadConfig: Resemblyzer (or what it imports) is not installed; the message says how.
    """
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            try:
                from resemblyzer import VoiceEncoder
            except ImportError as exc:
                raise BadConfig(f"--speakers needs Resemblyzer ({exc.name} is missing): pip install --no-deps "
                                "--require-hashes -r requirements/conversation.txt") from None
            _ENCODER = VoiceEncoder("cpu", verbose=False)
        return _ENCODER


def embed_segments(waves: list[np.ndarray], *, rate: float = PARTIALS_PER_SECOND, batch: int = 64) -> np.ndarray:
    """One L2-normalised 256-d voice embedding per 16 kHz wave, [N, 256]: Resemblyzer's
    ``embed_utterance`` (1.6 s partials, their embeddings averaged), with the partials of all
    segments run through the encoder together in batches rather than one segment per call."""
    import torch
    from resemblyzer import normalize_volume, wav_to_mel_spectrogram

    enc = voice_encoder()
    mels, owner = [], []
    for i, w in enumerate(waves):
        w = normalize_volume(np.asarray(w, dtype=np.float32), -30, increase_only=True).astype(np.float32)
        wav_slices, mel_slices = enc.compute_partial_slices(len(w), rate=rate, min_coverage=0.75)
        if wav_slices[-1].stop >= len(w):
            w = np.pad(w, (0, wav_slices[-1].stop - len(w)))
        mel = wav_to_mel_spectrogram(w)
        mels += [mel[s] for s in mel_slices]
        owner += [i] * len(mel_slices)
    out = np.zeros((len(waves), 256), dtype=np.float64)
    owner_a = np.array(owner, dtype=int)
    with torch.inference_mode():
        for k in range(0, len(mels), batch):
            part = enc(torch.from_numpy(np.stack(mels[k:k + batch]))).numpy()
            np.add.at(out, owner_a[k:k + batch], part)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def cluster_speakers(embeddings: np.ndarray, speakers: int | str, *, weights: np.ndarray | None = None) -> list[str]:
    """Speaker names ``S1, S2, ...`` per embedding, numbered in order of first appearance.

    Args:
        embeddings: [N, D] L2-normalised, in time order.
        speakers: a count, or ``"auto"`` (1 to :data:`MAX_AUTO_SPEAKERS`, by silhouette).
        weights: segment durations; with ``auto`` the silhouette is weighted by them so that
            short, noisy segments do not decide the count.
    """
    n = len(embeddings)
    if n == 0:
        return []
    x = _centred(embeddings)
    if speakers == "auto":
        ids = _auto(x, embeddings, weights)
    else:
        ids = _kmeans(x, min(int(speakers), n))
    return _in_order(ids)


def _centred(x: np.ndarray) -> np.ndarray:
    if len(x) < 2:
        return x
    c = x - x.mean(axis=0, keepdims=True)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-8)


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    if k <= 1 or len(x) < 2:
        return np.zeros(len(x), dtype=int)
    dims = min(max(4, 2 * k), len(x) - 1, x.shape[1])
    if dims >= k:  # the speaker directions dominate a recording's variance; the rest is mostly mood
        x = PCA(n_components=dims, random_state=0).fit_transform(x)
    return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(x)


def _auto(x: np.ndarray, raw: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    from sklearn.metrics import silhouette_samples

    if len(x) < 3:
        return np.zeros(len(x), dtype=int)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    best, best_score = np.zeros(len(x), dtype=int), MIN_SILHOUETTE
    for k in range(2, min(MAX_AUTO_SPEAKERS, len(x) - 1) + 1):
        ids = _kmeans(x, k)
        if len(np.unique(ids)) < k or _closest_centres(raw, ids) > SAME_VOICE:
            break  # splitting further separates one voice
        score = float(np.average(silhouette_samples(x, ids, metric="cosine"), weights=w))
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
    names: dict[int, str] = {}
    for i in ids:
        names.setdefault(int(i), f"S{len(names) + 1}")
    return [names[int(i)] for i in ids]

