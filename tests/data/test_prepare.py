import pandas as pd
import pytest

from emovox.errors import InvalidCorpus
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
