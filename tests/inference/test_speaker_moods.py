"""Voices read relative to their moods (``speakers.mood_features``): where one speaker's moods lie about as
far apart as two speakers, the split still follows the speakers; where each speaker keeps to moods of
their own, it still does; ``auto`` counts as before."""
import numpy as np

from emovox.inference.speakers import cluster_speakers, mood_features

SEEDS = range(10)


def _voices(moods_of, seed, *, voice=1.0, spread=1.3, moods=4, shuffled=False):
    """24 turns alternating between two speakers: each a speaker direction of length ``voice`` plus
    its mood's direction (length ``spread``) plus noise, L2-normalised; and emotion probabilities
    that name each turn's mood (0.85 on it). ``shuffled``: the turns in a random order, so that the
    order (``speaker_turns``) cannot tell the speakers apart and only the voices and moods can."""
    rng = np.random.default_rng(seed)
    speaker = rng.normal(size=(2, 32))
    speaker *= voice / np.linalg.norm(speaker, axis=1, keepdims=True)
    mood = rng.normal(size=(moods, 32))
    mood *= spread / np.linalg.norm(mood, axis=1, keepdims=True)
    who = [t % 2 for t in range(24)]
    what = [moods_of[s][(t // 2) % len(moods_of[s])] for t, s in enumerate(who)]
    x = speaker[who] + mood[what] + rng.normal(size=(24, 32)) * 0.15
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    probs = np.full((24, moods), 0.15 / (moods - 1))
    probs[np.arange(24), what] = 0.85
    if shuffled:
        order = rng.permutation(24)
        x, probs, who = x[order], probs[order], [who[i] for i in order]
    return x, probs, ["S1" if w == who[0] else "S2" for w in who]


def _wrong(names, truth):
    agree = np.mean([(n == names[0]) == (t == truth[0]) for n, t in zip(names, truth)])
    return min(agree, 1 - agree)


def test_speakers_sharing_their_moods_are_split_by_voice_with_the_moods():
    plain, aware = [], []
    for seed in SEEDS:
        x, probs, truth = _voices([[0, 1, 2, 3]] * 2, seed, shuffled=True)
        plain.append(_wrong(cluster_speakers(x, 2), truth))
        aware.append(_wrong(cluster_speakers(x, 2, moods=probs), truth))
    assert np.mean(plain) > 0.2, plain  # without the moods, some draws split the moods
    assert max(aware) <= 0.05, aware


def test_speakers_who_keep_to_their_own_moods_stay_apart():
    for seed in SEEDS:
        x, probs, truth = _voices([[0, 1], [2, 3]], seed)
        assert cluster_speakers(x, 2, moods=probs) == truth


def test_auto_counts_without_the_moods_and_splits_with_them():
    for seed in SEEDS:
        x, probs, _ = _voices([[0, 1, 2, 3]] * 2, seed)
        k = len(set(cluster_speakers(x, "auto")))  # the count, as without the moods
        assert cluster_speakers(x, "auto", moods=probs) == cluster_speakers(x, k, moods=probs)
        x, probs, truth = _voices([[0, 1, 2, 3]] * 2, seed, voice=3.0)  # voices far apart: auto finds both
        assert cluster_speakers(x, "auto", moods=probs) == truth
    x, probs, _ = _voices([[0, 1, 2, 3]] * 2, 0)
    assert cluster_speakers(x[:3], 2, moods=probs[:3]) == cluster_speakers(x[:3], 2)  # too few to read moods


def test_one_emotion_for_every_turn_leaves_the_voices_less_each_ones_mean():
    x, probs, _ = _voices([[0, 1, 2, 3]] * 2, 2)
    feats = mood_features(x, probs, 4)
    assert feats.shape == (24, 8)
    assert np.allclose(np.linalg.norm(feats, axis=1), np.sqrt(2))  # each view L2-normalised
    flat = mood_features(x, np.ones((24, 1)), 4)[:, 4:]
    sim = x @ x.T
    rel = sim - (sim.sum(1, keepdims=True) - np.diag(sim)[:, None]) / 23  # less i's mean similarity to the others
    rel = (rel + rel.T) / 2
    np.fill_diagonal(rel, 0)
    values, vectors = np.linalg.eigh(rel)
    ref = vectors[:, -4:] * np.sqrt(np.maximum(values[-4:], 0))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.allclose(np.abs(flat @ flat.T), np.abs(ref @ ref.T), atol=1e-6)


def test_the_low_rank_path_decomposes_exactly_what_the_full_one_does():
    from emovox.inference.speakers import _low_rank_spectral, _spectral

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # self-similarity 1 everywhere: leaving it out is a shift
    full, low = _spectral(x @ x.T, 5), _low_rank_spectral(x, x, 1.0, 5)
    np.testing.assert_allclose(low @ low.T, full @ full.T, atol=1e-8)  # the same directions and scales
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    both = (a @ b.T + b @ a.T) / 2 - 0.3 * np.eye(40)
    values, vectors = np.linalg.eigh(both)
    ref = vectors[:, -3:] * np.sqrt(np.maximum(values[-3:], 0))
    np.testing.assert_allclose(_low_rank_spectral(a, b, 0.3, 3) @ _low_rank_spectral(a, b, 0.3, 3).T,
                               ref @ ref.T, atol=1e-8)


def test_long_recordings_take_the_low_rank_path_and_still_split_by_voice(monkeypatch):
    from emovox.inference import speakers

    monkeypatch.setattr(speakers, "MOOD_EXACT_MAX", 10)  # every recording here is "long"
    aware = []
    for seed in SEEDS:
        x, probs, truth = _voices([[0, 1, 2, 3]] * 2, seed)
        aware.append(_wrong(cluster_speakers(x, 2, moods=probs), truth))
    assert max(aware) <= 0.05, aware
