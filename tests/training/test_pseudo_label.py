import pandas as pd
import pytest

from emovox.errors import BadConfig
from emovox.data.manifest import load_manifest
from emovox.training.pseudo_label import pseudo_label
from emovox.training.train import split_frames, with_extra_train


def test_keeps_only_confident_predictions(tiny_run, tiny_corpus, tmp_path):
    everything = pseudo_label(runs=[tiny_run], inputs=[tiny_corpus], out=tmp_path / "all", min_confidence=1e-6)
    assert everything.kept == everything.scored == 48
    conf = pd.read_csv(tmp_path / "all" / "confidences.csv")["confidence"]
    threshold = float(conf.median())
    some = pseudo_label(runs=[tiny_run], inputs=[tiny_corpus], out=tmp_path / "some", min_confidence=threshold)
    assert some.kept == int((conf >= threshold).sum()) and 0 < some.kept < 48
    df = load_manifest(some.manifest)
    assert (df["split"] == "train").all() and (df["corpus"] == "pseudo").all()
    assert set(df["label"]) <= {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}


def test_extra_train_rows_are_mixed_in(tiny_run, tiny_corpus, tiny_manifest, tmp_path):
    res = pseudo_label(runs=[tiny_run], inputs=[tiny_corpus], out=tmp_path / "p", min_confidence=1e-6)
    _, train_df, _ = split_frames(tiny_manifest)
    mixed = with_extra_train(train_df, [str(res.manifest)])
    assert len(mixed) == len(train_df) + 48


def test_bad_threshold(tiny_run, tiny_corpus, tmp_path):
    with pytest.raises(BadConfig, match="min-confidence"):
        pseudo_label(runs=[tiny_run], inputs=[tiny_corpus], out=tmp_path, min_confidence=1.5)
