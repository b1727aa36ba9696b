import json

import pandas as pd
import pytest

from emovox.errors import BadLabel, InvalidCorpus
from emovox.data.manifest import COLUMNS, load_manifest
from emovox.data.prepare import prepare
from emovox.data.splits import leaked_speakers
from emovox.testing import BROKEN_KINDS, make_broken_files, make_crema_corpus, write_tone


@pytest.fixture()
def mixed(tmp_path):
    root = tmp_path / "corpus"
    good = make_crema_corpus(root, actors=range(1001, 1005), emotions=("ANG", "SAD"), seconds=0.3)
    bad = make_broken_files(root)
    return root, good, bad


def test_every_bad_file_is_listed_with_its_reason(mixed, tmp_path):
    root, good, bad = mixed
    with pytest.raises(InvalidCorpus) as exc:
        prepare(corpus="crema-d", root=root, out=tmp_path / "out", workers=1)
    listed = {p.split("/")[-1]: reason for p, reason in exc.value.problems}
    assert set(listed) == {p.name for p in bad.values()}
    assert "NaN" in listed[bad["nan"].name] and "silence" in listed[bad["silence"].name]
    assert "XYZ" in listed[bad["unknown_code"].name]
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_drop_invalid_keeps_exactly_the_good_ones(mixed, tmp_path):
    root, good, bad = mixed
    res = prepare(corpus="crema-d", root=root, out=tmp_path / "out", drop_invalid=True, workers=2)
    df = load_manifest(res.manifest)
    assert sorted(df["path"]) == sorted(str(p.resolve()) for p in good)
    invalid = pd.read_csv(tmp_path / "out" / "invalid.csv")
    assert len(invalid) == len(BROKEN_KINDS)
    assert {"path", "reason"} <= set(invalid.columns) and invalid["reason"].str.len().min() > 5
    assert list(pd.read_csv(res.manifest).columns) == list(COLUMNS)
    assert not leaked_speakers(df)


def test_duplicates(tmp_path):
    root = tmp_path / "c"
    make_crema_corpus(root, actors=range(1001, 1005), emotions=("ANG", "SAD"), seconds=0.3)
    src = root / "1001_DFA_ANG_XX.wav"
    (root / "1001_DFA_SAD_XX.wav").write_bytes(src.read_bytes())  # same audio, other label: invalid
    (root / "1002_TIE_ANG_XX.wav").write_bytes((root / "1002_DFA_ANG_XX.wav").read_bytes())  # same label: warning
    res = prepare(corpus="crema-d", root=root, out=tmp_path / "o", drop_invalid=True, workers=1)
    assert len(res.dropped) == 1 and "labelled" in res.dropped[0][1]
    assert "identical audio" in res.report.read_text()


def test_csv_without_speakers_warns_and_random_splits(tmp_path):
    rows = []
    for i in range(30):
        write_tone(tmp_path / f"c{i}.wav", 0.3, freq=100 + 10 * i)
        rows.append({"path": f"c{i}.wav", "label": "pos" if i % 2 else "neg"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    res = prepare(corpus="csv", root=tmp_path / "m.csv", out=tmp_path / "o", workers=1)
    df = load_manifest(res.manifest)
    assert set(df["split"]) == {"train", "validation", "test"}
    assert "optimistic" in res.report.read_text()
    assert res.scheme.labels == ("neg", "pos")


def test_confound_warning_for_intensity_in_one_sentence(tmp_path):
    root = tmp_path / "c"
    n = 0
    for a in range(1001, 1005):
        for emo in ("ANG", "SAD", "HAP"):
            for s in ("DFA", "TIE", "ITS"):
                n += 1
                write_tone(root / f"{a}_{s}_{emo}_XX.wav", 0.2, freq=150 + n, seed=n)
            for inten in ("LO", "MD", "HI"):
                n += 1
                write_tone(root / f"{a}_IEO_{emo}_{inten}.wav", 0.2, freq=150 + n, seed=n)
    res = prepare(corpus="crema-d", root=root, out=tmp_path / "o", workers=1)
    text = res.report.read_text()
    assert "intensity is predictable from sentence" in text
    assert "IEO" in text


def test_no_false_confound_on_balanced_design(tmp_path):
    root = tmp_path / "c"
    make_crema_corpus(root, actors=range(1001, 1007), emotions=("ANG", "SAD", "HAP"), seconds=0.2)
    text = prepare(corpus="crema-d", root=root, out=tmp_path / "o", workers=1).report.read_text()
    assert "predictable from" not in text


def test_real_ravdess_960(real_data, tmp_path):
    res = prepare(corpus="ravdess", root=real_data / "ravdess16k", out=tmp_path / "r")
    df = load_manifest(res.manifest)
    assert len(df) == 960 and df["speaker"].nunique() == 16 and df["label"].nunique() == 8
    assert not leaked_speakers(df) and set(df["split"]) == {"train", "validation", "test"}
    assert df["duration"].between(2.5, 6).all()
    assert (tmp_path / "r" / "class_balance.png").stat().st_size > 1000


def test_real_48k_durations(real_data, tmp_path):
    res = prepare(corpus="ravdess", root=real_data / "ravdess48k-originals", out=tmp_path / "r", workers=1)
    df = load_manifest(res.manifest)
    import soundfile as sf

    for p, d in zip(df["path"], df["duration"]):
        assert d == pytest.approx(sf.info(p).duration, abs=1e-3)


# A folder corpus labelled in each vocabulary the issue names -> the canonical names it lands in.
FOLDER_VOCABULARIES = {
    "emodb-letters": {"W": "angry", "L": "boredom", "F": "happy", "N": "neutral"},
    "emodb-german": {"Wut": "angry", "Langeweile": "boredom", "Freude": "happy", "Trauer": "sad"},
    "emovo-codes": {"gio": "happy", "rab": "angry", "pau": "fearful", "tri": "sad"},
    "ravdess-numbers": {"01": "neutral", "02": "calm", "05": "angry", "08": "surprised"},
    "iemocap": {"ang": "angry", "exc": "excited", "fru": "frustration", "neu": "neutral"},
    "crema-d": {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "SAD": "sad"},
    "english": {"anger": "angry", "happiness": "happy", "fear": "fearful", "surprise": "surprised"},
}


def _folders(root, labels, per_label=2):
    for k, lab in enumerate(labels):
        for j in range(per_label):
            write_tone(root / lab / f"{j}.wav", 0.2, freq=150 + 40 * k + 5 * j, seed=10 * k + j)
    return root


@pytest.mark.parametrize("vocabulary", sorted(FOLDER_VOCABULARIES))
def test_folders_in_any_vocabulary_land_in_canonical_names(vocabulary, tmp_path):
    table = FOLDER_VOCABULARIES[vocabulary]
    res = prepare(corpus="folders", root=_folders(tmp_path / "c", table), out=tmp_path / "o", canonical=True,
                  workers=1)
    df = load_manifest(res.manifest)
    assert sorted(df["label"]) == sorted(name for name in table.values() for _ in range(2))
    assert set(res.scheme.labels) == set(table.values())
    assert {(r["from"], r["to"]) for r in res.label_mapping["renamed"]} == {
        (a, b) for a, b in table.items() if a != b}


def test_csv_and_label_map_file(tmp_path):
    for i in range(12):
        write_tone(tmp_path / f"c{i}.wav", 0.2, freq=120 + 15 * i)
    labels = ["Ärger", "gioia", "neutral", "joy"] * 3
    pd.DataFrame({"path": [f"c{i}.wav" for i in range(12)], "emotion": labels,
                  "speaker": [f"s{i % 6}" for i in range(12)]}).to_csv(tmp_path / "m.csv", index=False)
    res = prepare(corpus="csv", root=tmp_path / "m.csv", out=tmp_path / "o", canonical=True, workers=1)
    assert list(load_manifest(res.manifest)["label"]) == ["angry", "happy", "neutral", "happy"] * 3
    (tmp_path / "map.csv").write_text("from,to\nÄrger,negative\ngioia,positive\njoy,positive\nneutral,neutral\n")
    res = prepare(corpus="csv", root=tmp_path / "m.csv", out=tmp_path / "o2", label_map=tmp_path / "map.csv",
                  scheme="negative,neutral,positive", workers=1)
    assert list(load_manifest(res.manifest)["label"]) == ["negative", "positive", "neutral", "positive"] * 3
    assert res.scheme.labels == ("negative", "neutral", "positive")


def test_hf_dataset_lands_in_canonical_names(tmp_path):
    pytest.importorskip("datasets")
    from emovox.testing import make_hf_dataset

    root = make_hf_dataset(tmp_path / "ds", labels=("anger", "joy", "neutral", "sadness"))
    res = prepare(corpus="hf", root=root, out=tmp_path / "o", canonical=True, workers=1)
    assert set(load_manifest(res.manifest)["label"]) == {"angry", "happy", "neutral", "sad"}
    assert res.scheme.labels == ("neutral", "happy", "sad", "angry")


def test_crema_composite_scheme_maps_its_emotion_part(tmp_path):
    root = tmp_path / "c"
    make_crema_corpus(root, actors=range(1001, 1005), emotions=("ANG", "NEU"), seconds=0.2)
    write_tone(root / "1001_IEO_ANG_HI.wav", 0.3, freq=333)
    res = prepare(corpus="crema-d", root=root, out=tmp_path / "o", canonical=True, workers=1)
    df = load_manifest(res.manifest)
    assert res.scheme.composite and len(res.scheme) == 21 and res.scheme.split("angry_HI") == ("angry", "HI")
    assert set(df["label"]) == {"angry_XX", "angry_HI", "neutral_XX"}
    assert set(df["emotion"]) == {"angry", "neutral"} and set(df["intensity"]) == {"XX", "HI"}
    six = prepare(corpus="crema-d", root=root, out=tmp_path / "o6", canonical=True, scheme="crema-d-6", workers=1)
    assert six.scheme.labels == ("angry", "disgust", "fearful", "happy", "neutral", "sad")
    assert set(load_manifest(six.manifest)["label"]) == {"angry", "neutral"}


def test_unmapped_labels_refused_in_one_line_or_dropped_and_reported(tmp_path):
    root = _folders(tmp_path / "c", ["anger", "gioia", "a", "sa"])
    with pytest.raises(BadLabel) as exc:
        prepare(corpus="folders", root=root, out=tmp_path / "o", canonical=True, workers=1)
    assert "\n" not in str(exc.value) and "a (2), sa (2)" in str(exc.value)
    assert not (tmp_path / "o" / "manifest.csv").exists()
    res = prepare(corpus="folders", root=root, out=tmp_path / "o", canonical=True, unmapped="drop", workers=1)
    assert sorted(set(load_manifest(res.manifest)["label"])) == ["angry", "happy"] and res.rows == 4
    assert res.label_mapping["dropped"] == {"a": 2, "sa": 2}
    report = res.report.read_text()
    assert "## Label mapping" in report and "Dropped 4 clip(s) with unmapped labels: a (2), sa (2)" in report
    assert json.loads((tmp_path / "o" / "data_report.json").read_text())["label_mapping"]["dropped"] == {"a": 2, "sa": 2}


def test_emodb_and_iemocap_prepare_end_to_end(tmp_path):
    from emovox.testing import make_emodb_corpus, make_iemocap_corpus

    make_emodb_corpus(tmp_path / "emodb")
    emodb = prepare(corpus="emodb", root=tmp_path / "emodb",
                    out=tmp_path / "o1", workers=1)
    assert emodb.scheme.name == "emodb-7" and set(load_manifest(emodb.manifest)["label"]) == set(emodb.scheme.labels)
    make_iemocap_corpus(tmp_path / "iemocap", sessions=(1, 2, 3, 4, 5))
    full = prepare(corpus="iemocap", root=tmp_path / "iemocap", out=tmp_path / "o2", workers=1)
    assert full.scheme.labels == ("neutral", "happy", "sad", "angry", "excited", "frustration", "undecided")
    # the usual four classes: excited merged into happy, the rest dropped and listed
    four = prepare(corpus="iemocap", root=tmp_path / "iemocap", out=tmp_path / "o3", label_map="exc=happy",
                   scheme="neutral,happy,sad,angry", unmapped="drop", workers=1)
    df = load_manifest(four.manifest)
    assert df["label"].value_counts().to_dict() == {"happy": 20, "neutral": 10, "sad": 10, "angry": 10}
    assert four.label_mapping["dropped"] == {"frustration": 10, "undecided": 10}
    assert not leaked_speakers(df) and df["speaker"].nunique() == 10


def test_real_emovo_588(real_data, tmp_path):
    if not (real_data / "emovo16k").is_dir():
        pytest.skip("EMOVO (emovo16k) is not in EMOVOX_TEST_DATA")
    res = prepare(corpus="emovo", root=real_data / "emovo16k", out=tmp_path / "e")
    df = load_manifest(res.manifest)
    assert res.rows == 588 and not res.dropped and res.scheme.name == "emovo-7"
    assert df.groupby("speaker").size().to_dict() == {s: 98 for s in ("f1", "f2", "f3", "m1", "m2", "m3")}
    assert df["label"].value_counts().to_dict() == {e: 84 for e in
                                                    ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")}
    assert (df["emotion"] == df["label"]).all() and df["sentence"].nunique() == 14
    assert not leaked_speakers(df) and set(df["split"]) == {"train", "validation", "test"}
