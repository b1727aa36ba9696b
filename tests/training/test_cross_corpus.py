"""Several corpora in one model, cross-corpus evaluation restricted to a corpus's labels, the
train x test matrix, and per-speaker adaptation at evaluation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emovox.cli import main
from emovox.data.prepare import prepare
from emovox.evaluation.evaluate import evaluate
from emovox.inference.predict import Predictor
from emovox.testing import make_crema_corpus

FAST = ["training.max_steps=4", "training.eval_steps=2", "data.max_seconds=1.0", "augment.enabled=false"]
PROBE = ["model.freeze_backbone=true", "model.cache_features=true", "model.pooling=stats", "training.head_solver=ridge",
         "training.head_l2=1.0", "augment.enabled=false", "data.max_seconds=1.0"]


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("xc")
    make_crema_corpus(root / "a")
    make_crema_corpus(root / "b", actors=range(1010, 1016), emotions=("ANG", "HAP", "SAD"))
    return [prepare(corpus="crema-d", root=root / c, out=root / f"p{c}", scheme="crema-d-6", workers=1).manifest
            for c in ("a", "b")]


def test_training_on_two_manifests_keeps_each_corpus_apart(two_corpora, tmp_path):
    args = ["train", "--manifest", str(two_corpora[0]), "--manifest", str(two_corpora[1]), "--out", str(tmp_path / "r"),
            "--model", "tiny", "data.balance_corpora=true", *FAST]
    assert main(args) == 0
    df = pd.read_csv(tmp_path / "r" / "manifest.csv", dtype=str)
    assert set(df["corpus"]) == {"pa", "pb"}  # both "crema-d": named by their folders
    assert all(s.startswith(("pa/", "pb/")) for s in df["speaker"])
    for corpus, part in df.groupby("corpus"):  # splits kept per corpus, speakers never in two splits
        assert set(part["split"]) == {"train", "validation", "test"}
        assert part.groupby("speaker")["split"].nunique().max() == 1
    counts = df[df["split"] == "train"].groupby("corpus").size()
    assert counts["pa"] == counts["pb"]  # balanced: the smaller corpus's train rows repeated
    meta = json.loads((tmp_path / "r" / "emovox.json").read_text())
    assert meta["manifest"].endswith("r/manifest.csv") and meta["data"]["corpora"] == ["pa", "pb"]
    m = evaluate(runs=[tmp_path / "r"], manifest=tmp_path / "r" / "manifest.csv", out=tmp_path / "e")
    assert set(m["groups"]["corpus"]["groups"]) == {"pa", "pb"}  # each corpus beside the pooled metrics


def test_a_model_scores_a_corpus_with_fewer_labels_among_those_labels(tiny_run, two_corpora, tmp_path, capsys):
    m = evaluate(runs=[tiny_run], manifest=two_corpora[1], out=tmp_path / "e", split="test")
    assert m["restricted_to"] == ["ANG", "HAP", "SAD"] and m["left_out_labels"] == ["DIS", "FEA", "NEU"]
    assert set(m["per_class"]) == {"ANG", "HAP", "SAD"}
    # the same as taking the full model's probabilities, dropping the other labels, renormalising
    df = pd.read_csv(two_corpora[1]).query("split == 'test'")
    P = Predictor.from_run_dir(tiny_run).probs([_wave(p) for p in df["path"]])
    keep = [0, 3, 5]  # ANG, HAP, SAD in crema-d-6
    pred = np.array(["ANG", "HAP", "SAD"])[P[:, keep].argmax(axis=1)]
    truth = df["label"].to_numpy()
    uar = np.mean([np.mean(pred[truth == c] == c) for c in np.unique(truth)])
    assert m["uar"] == pytest.approx(uar)
    assert "left out: DIS, FEA, NEU" in (tmp_path / "e" / "report.md").read_text()
    full = evaluate(runs=[tiny_run], manifest=two_corpora[1], out=tmp_path / "f", split="test", all_labels=True)
    assert len(full["per_class"]) == 6 and "left_out_labels" not in full
    # a label the model does not have: one line naming it
    other = pd.read_csv(two_corpora[1]).assign(label="bored")
    other.to_csv(tmp_path / "other.csv", index=False)
    assert main(["evaluate", str(tiny_run), "--manifest", str(tmp_path / "other.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bored" in err[0]


def _wave(path):
    from emovox.data.audio import load_audio

    return load_audio(path)[: 16000]


def test_matrix_writes_the_grid_in_one_command(two_corpora, tmp_path):
    args = ["matrix", "--manifest", str(two_corpora[0]), "--manifest", str(two_corpora[1]), "--out", str(tmp_path / "m"),
            "--model", "tiny", *FAST]
    assert main(args) == 0
    grid = pd.read_csv(tmp_path / "m" / "matrix.csv", index_col=0)
    assert list(grid.index) == ["pa", "pb"] and list(grid.columns) == ["pa", "pb"]
    assert grid.notna().all().all() and ((grid >= 0) & (grid <= 1)).all().all()
    assert (tmp_path / "m" / "matrix.png").stat().st_size > 5000
    cross = json.loads((tmp_path / "m" / "train-pa" / "eval-pb" / "metrics.json").read_text())
    assert cross["n"] == len(pd.read_csv(two_corpora[1]))  # every clip of the unseen corpus
    assert sorted(pd.read_csv(tmp_path / "m" / "data" / "pa" / "manifest.csv")["label"].unique()) == ["ANG", "HAP", "SAD"]


def test_speaker_adapted_evaluation_is_reported_apart(tiny_manifest, tmp_path):
    from emovox.training.train import train

    run = train(manifest=tiny_manifest, out=tmp_path / "probe", model="tiny", overrides=PROBE, progress=False).run_dir
    plain = evaluate(runs=[run], manifest=tiny_manifest, out=tmp_path / "plain", split="test")
    assert main(["evaluate", str(run), "--manifest", str(tiny_manifest), "--out", str(tmp_path / "spk"),
                 "--adapt", "speaker"]) == 0
    m = json.loads((tmp_path / "spk" / "metrics.json").read_text())
    assert m["n"] == plain["n"] and "transductive" in m["method"]
    assert "transductive" in (tmp_path / "spk" / "report.md").read_text()
    card = json.loads((run / "emovox.json").read_text())["evaluation"]["test"]
    assert card["uar"] == pytest.approx(round(plain["uar"], 4), abs=1e-4)  # the card keeps the plain result
    # one speaker of 8 clips in the test split: below the 10-clip floor, scored by the split's statistics
    assert main(["evaluate", str(run), "--manifest", str(tiny_manifest), "--out", str(tmp_path / "x"),
                 "--adapt", "corpus"]) == 2
