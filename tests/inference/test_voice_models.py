"""The conversation path's pieces that were redone in numpy so that the runtime install (no torch,
no scikit-learn) runs them, each held against the library it stands in for: silero-vad's framing
and start/end rule, Resemblyzer's mel front end, partials and volume rule, scikit-learn's k-means,
PCA and cosine silhouette; and ``export --conversation``'s ONNX speaker encoder against the torch one."""
from __future__ import annotations

import numpy as np
import pytest

from emovox.data.audio import SAMPLE_RATE, load_audio
from emovox.inference.kmeans import kmeans, pca, silhouette_cosine
from emovox.inference.speakers import (PARTIALS_PER_SECOND, embed_segments, louder, mel_spectrogram, partial_starts,
                                       voice_encoder)
from emovox.inference.vad import FRAME, VadOptions, speech_probabilities, speech_spans
from emovox.inference.conversation_export import update_bundle, write_bundle
from emovox.inference.voice_models import SPEAKER_FILE, VAD_FILE, bundle_of, speaker_files
from emovox.testing import tone

SR = SAMPLE_RATE


def _probability_runs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Frame probabilities with runs of speech and pauses, values around every threshold."""
    level = np.repeat(rng.random(max(1, n // 6 + 1)), 6)[:n]
    return np.clip(level + rng.normal(0, 0.15, n), 0, 1).astype(np.float32)


def test_speech_spans_equal_silero_rule():
    silero = pytest.importorskip("silero_vad", reason="pip install --no-deps -r requirements/conversation.txt")
    rng = np.random.default_rng(0)
    checked = 0
    for case in range(300):
        n = int(rng.integers(0, 300))
        probs = _probability_runs(rng, n)
        opts = VadOptions(threshold=float(rng.uniform(0.2, 0.8)), min_speech=float(rng.choice([0.0, 0.1, 0.25, 0.5])),
                          min_silence=float(rng.choice([0.0, 0.064, 0.25, 0.5])))
        n_samples = max(0, n * FRAME - int(rng.integers(0, FRAME)))
        ref = silero.get_speech_timestamps_from_probs(
            list(probs), sampling_rate=SR, threshold=opts.threshold, min_speech_duration_ms=int(opts.min_speech * 1000),
            min_silence_duration_ms=int(opts.min_silence * 1000), speech_pad_ms=0, audio_length_samples=n_samples)
        got = speech_spans(probs, n_samples, opts)
        assert got == [(int(s["start"]), int(s["end"])) for s in ref], case
        checked += len(got)
    assert checked > 300  # the cases hold many segments, not only empty answers


def _speechy(real_data_or_none) -> np.ndarray:
    if real_data_or_none is not None:
        clips = sorted((real_data_or_none / "ravdess16k" / "Actor_01").glob("*.flac"))[:6]
        return np.concatenate([np.concatenate([load_audio(c), np.zeros(SR // 2, np.float32)]) for c in clips])
    return np.concatenate([tone(3.0, freq=150, seed=s) for s in range(6)])


@pytest.fixture(scope="module")
def speech(request) -> np.ndarray:
    from emovox.testing import test_data_dir

    return _speechy(test_data_dir())


def test_speech_probabilities_equal_silero_sequence_model(speech):
    silero = pytest.importorskip("silero_vad", reason="pip install --no-deps -r requirements/conversation.txt")
    assert len(speech) > 512 * FRAME  # more than one block of frames: the state is carried across
    ref = silero.load_silero_vad(sequence=True).audio_forward(speech, sampling_rate=SR)
    got = speech_probabilities(speech)
    assert got.shape == ref.shape == (-(-len(speech) // FRAME),)
    assert np.abs(got - ref).max() < 1e-6
    assert speech_probabilities(np.zeros(0, np.float32)).shape == (0,)


def test_speaker_front_end_equals_resemblyzer(speech):
    resemblyzer = pytest.importorskip("resemblyzer", reason="pip install --no-deps -r requirements/conversation.txt")
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    enc = voice_encoder()
    for wave in (speech[: 3 * SR], speech[SR: SR + 12345] * 0.01, tone(0.3, freq=220, seed=1)):
        ref = wav_to_mel_spectrogram(wave)
        got = mel_spectrogram(wave, enc.mel_filters)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
        assert np.allclose(louder(wave), normalize_volume(wave, -30, increase_only=True), rtol=1e-5, atol=1e-7)
    for n in [1, 100, 16_000, 25_599, 25_600, 40_000, 123_457, 480_000]:
        _, mel_slices = resemblyzer.VoiceEncoder.compute_partial_slices(n, PARTIALS_PER_SECOND, 0.75)
        assert partial_starts(n) == [s.start for s in mel_slices], n


def test_embeddings_equal_resemblyzer_embed_utterance(speech):
    resemblyzer = pytest.importorskip("resemblyzer", reason="pip install --no-deps -r requirements/conversation.txt")
    waves = [speech[: 2 * SR], speech[2 * SR: 7 * SR], speech[7 * SR: 7 * SR + SR // 3]]
    ref = resemblyzer.VoiceEncoder("cpu", verbose=False)
    want = np.stack([ref.embed_utterance(resemblyzer.normalize_volume(w, -30, increase_only=True)) for w in waves])
    assert np.abs(embed_segments(waves) - want).max() < 1e-4


def test_bundle_holds_the_detector_and_an_onnx_speaker_encoder_equal_to_torch(tmp_path, speech):
    pytest.importorskip("silero_vad", reason="pip install --no-deps -r requirements/conversation.txt")
    pytest.importorskip("resemblyzer", reason="pip install --no-deps -r requirements/conversation.txt")
    assert bundle_of([tmp_path]) is None
    write_bundle(tmp_path)
    bundle = bundle_of(["elsewhere", tmp_path])
    assert bundle == tmp_path / "conversation" and (bundle / VAD_FILE).is_file()
    assert speaker_files(bundle)[0] == bundle / SPEAKER_FILE
    onnx_enc = voice_encoder(bundle)
    assert onnx_enc.net is None and voice_encoder(None).net is not None  # ONNX from the bundle, torch without
    waves = [speech[i * SR: (i + 2) * SR + 777 * i] for i in range(4)]
    for batch in (waves, waves[:1], waves[:1] * 3):  # the graph was traced at batch 2: other sizes hold too
        assert np.abs(embed_segments(batch, bundle=bundle) - embed_segments(batch)).max() < 1e-5
    assert np.array_equal(speech_probabilities(speech[: 5 * SR], bundle), speech_probabilities(speech[: 5 * SR]))
    assert update_bundle(tmp_path, False) == [] and bundle_of([tmp_path]) is None  # a re-export without it


# -- clustering --------------------------------------------------------------------------------
def _blobs(rng, k, n, dims, spread):
    centres = rng.normal(0, 1, (k, dims))
    ids = rng.integers(0, k, n)
    return centres[ids] + rng.normal(0, spread, (n, dims)), ids


def _same_partition(a, b) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_equals_scikit_learn():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(1)
    for k in (2, 3, 5):
        x, truth = _blobs(rng, k, 60, 6, 0.05)
        assert _same_partition(kmeans(x, k), truth)
        # no structure: as low an inertia as scikit-learn's best of ten starts
        x = rng.normal(0, 1, (80, 4))
        ours = kmeans(x, k)
        ref = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
        inertia = sum(((x[ours == c] - x[ours == c].mean(0)) ** 2).sum() for c in range(k))
        assert len(np.unique(ours)) == k and inertia <= ref.inertia_ * 1.02
    assert np.array_equal(kmeans(x, 3), kmeans(x, 3))  # seeded
    assert kmeans(x[:1], 3).tolist() == [0] and kmeans(x, 1).tolist() == [0] * len(x)
    dup = np.repeat(x[:2], 5, axis=0)  # fewer distinct points than clusters: no crash, every id used once at most
    assert len(kmeans(dup, 3)) == 10


def test_pca_and_cosine_silhouette_equal_scikit_learn():
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_samples

    rng = np.random.default_rng(2)
    x, ids = _blobs(rng, 3, 40, 8, 0.4)
    ref = PCA(n_components=4).fit_transform(x)
    got = pca(x, 4)
    assert np.allclose(np.abs(got), np.abs(ref), atol=1e-9)  # each direction up to its sign
    ids[0] = 3  # a cluster of one point: silhouette 0
    assert np.allclose(silhouette_cosine(x, ids), silhouette_samples(x, ids, metric="cosine"), atol=1e-9)
    assert np.array_equal(silhouette_cosine(x, np.zeros(len(x), int)), np.zeros(len(x)))
