import numpy as np
import pandas as pd
import pytest

from emovox.errors import BadManifest
from emovox.data.splits import leaked_speakers, random_holdout, speaker_folds, speaker_holdout


def _frame(n_speakers=20, per=30, labels=("a", "b", "c"), seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"speaker": f"s{s:02d}", "label": rng.choice(labels)} for s in range(n_speakers) for _ in range(per)]
    return pd.DataFrame(rows)


def test_holdout_is_speaker_disjoint_and_near_fractions():
    df = _frame()
    df["split"] = speaker_holdout(df, seed=1)
    assert not leaked_speakers(df)
    frac = df["split"].value_counts(normalize=True)
    assert frac["train"] == pytest.approx(0.68, abs=0.08)
    assert frac["validation"] == pytest.approx(0.11, abs=0.06)
    assert frac["test"] == pytest.approx(0.21, abs=0.08)


def test_holdout_seeded_and_pinned():
    df = _frame()
    a, b = speaker_holdout(df, seed=3), speaker_holdout(df, seed=3)
    assert (a == b).all()
    assert not (speaker_holdout(df, seed=4) == a).all()
    pinned = speaker_holdout(df, test_speakers=["s03", "s07"])
    assert set(df.loc[pinned == "test", "speaker"]) == {"s03", "s07"}
    with pytest.raises(BadManifest, match="not in the corpus"):
        speaker_holdout(df, test_speakers=["nobody"])


def test_holdout_stratifies_labels():
    df = _frame(n_speakers=30, per=20)
    df["split"] = speaker_holdout(df)
    dist = pd.crosstab(df["split"], df["label"], normalize="index")
    assert (dist.max() - dist.min()).max() < 0.15


def test_few_speakers_error():
    with pytest.raises(BadManifest, match="speaker"):
        speaker_holdout(_frame(n_speakers=2))


def test_folds_are_speaker_disjoint_and_cover_all():
    df = _frame(n_speakers=12)
    seen = []
    for train, test in speaker_folds(df, folds=4):
        assert not set(df.speaker[train]) & set(df.speaker[test])
        seen += list(test)
    assert sorted(seen) == list(range(len(df)))
    with pytest.raises(BadManifest):
        list(speaker_folds(_frame(n_speakers=3), folds=5))


def test_random_holdout_without_speakers():
    df = _frame()
    s = random_holdout(df, seed=0)
    assert set(s) == {"train", "validation", "test"}
    assert s.value_counts(normalize=True)["test"] == pytest.approx(0.21, abs=0.02)
