"""What file paths say (prepare --path-pattern) for folders and CSV corpora: speakers, labels, gender."""
from __future__ import annotations

import pandas as pd
import pytest

from emovox.cli import main
from emovox.data.corpora import scan_corpus
from emovox.data.prepare import prepare
from emovox.errors import BadConfig
from emovox.testing import write_tone

LABELS = ("Angry", "Happy", "Neutral", "Sad")
SPEAKERS = ("SM1", "SF2", "SM3", "SF4", "SM5", "SF6", "SM7", "SF8")


def _urdu_like(root, speakers=SPEAKERS, per=2):
    """ROOT/<Label>/<speaker>_F<k>_<L><k>.wav: speaker and gender in the name, label from the folder."""
    seed = 0
    for lab in LABELS:
        for spk in speakers:
            for k in range(per):
                seed += 1
                write_tone(root / lab / f"{spk}_F{k}_{lab[0]}0{k}.wav", 0.3, freq=150 + seed, seed=seed)
    return root


def test_named_groups_fill_speaker_gender_and_sentence(tmp_path):
    root = _urdu_like(tmp_path / "c", speakers=("SM1", "SF2"), per=1)
    scan = scan_corpus("folders", root, path_pattern=r"/(?P<speaker>S(?P<gender>[MF])\d+)_(?P<sentence>F\d+)_")
    got = sorted((r["label"], r["speaker"], r["gender"], r["sentence"]) for r in scan.rows)
    assert got[:2] == [("Angry", "SF2", "female", "F0"), ("Angry", "SM1", "male", "F0")]
    assert len(got) == 8 and not scan.problems


def test_first_group_or_whole_match_is_the_speaker(tmp_path):
    write_tone(tmp_path / "c" / "happy" / "spk07" / "a.wav", 0.3)
    write_tone(tmp_path / "c" / "sad" / "spk12" / "b.wav", 0.3, freq=300)
    by_group = scan_corpus("folders", tmp_path / "c", path_pattern=r"^[^/]+/([^/]+)/")
    by_match = scan_corpus("folders", tmp_path / "c", path_pattern=r"spk\d+")
    assert sorted(r["speaker"] for r in by_group.rows) == sorted(r["speaker"] for r in by_match.rows) == ["spk07", "spk12"]


def test_prepare_splits_by_speaker_and_lists_files_the_pattern_misses(tmp_path):
    root = _urdu_like(tmp_path / "c")
    write_tone(root / "Sad" / "recording.wav", 0.3, freq=500)  # no speaker in its name
    res = prepare(corpus="folders", root=root, out=tmp_path / "m", canonical=True, drop_invalid=True,
                  path_pattern=r"/(?P<speaker>S(?P<gender>[MF])\d+)_")
    df = pd.read_csv(res.manifest)
    assert len(df) == len(LABELS) * len(SPEAKERS) * 2 and set(df["label"]) == {"angry", "happy", "neutral", "sad"}
    owners = df.groupby("speaker")["split"].nunique()
    assert (owners == 1).all() and set(df["split"]) == {"train", "validation", "test"}  # speaker-independent
    assert dict(df.groupby("speaker")["gender"].first()) == {s: "male" if s[1] == "M" else "female" for s in SPEAKERS}
    assert [p.endswith("recording.wav") for p, _ in res.dropped] == [True]
    assert "does not match --path-pattern" in res.dropped[0][1]
    report = (tmp_path / "m" / "data_report.md").read_text()
    assert "8 speakers" in report and "no speaker ids" not in report


def test_without_the_pattern_folders_split_at_random_with_a_warning(tmp_path):
    res = prepare(corpus="folders", root=_urdu_like(tmp_path / "c"), out=tmp_path / "m")
    assert any("no speaker ids" in n for n in res.notes)


def test_csv_without_speakers_takes_them_from_its_paths(tmp_path):
    root = _urdu_like(tmp_path / "c", per=1)
    rows = [{"path": p.relative_to(root).as_posix(), "label": p.parent.name.lower()} for p in sorted(root.rglob("*.wav"))]
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    scan = scan_corpus("csv", root / "labels.csv", path_pattern=r"/(S[MF]\d+)_")
    assert sorted({r["speaker"] for r in scan.rows}) == sorted(SPEAKERS)
    pd.DataFrame([{**r, "speaker": "x"} for r in rows]).to_csv(root / "with.csv", index=False)
    with pytest.raises(BadConfig, match="already names its speakers"):
        scan_corpus("csv", root / "with.csv", path_pattern=r"/(S[MF]\d+)_")
    with pytest.raises(BadConfig, match="labels from its label column"):
        scan_corpus("csv", root / "labels.csv", path_pattern=r"/(?P<label>[A-Z])")


def test_labels_from_folder_names_that_also_hold_the_speaker(tmp_path):
    for i, (spk, emo) in enumerate([("OAF", "angry"), ("OAF", "sad"), ("YAF", "angry"), ("YAF", "sad")]):
        write_tone(tmp_path / "c" / f"{spk}_{emo}" / f"{spk}_back_{emo}.wav", 0.3, freq=200 + 30 * i)
    scan = scan_corpus("folders", tmp_path / "c", path_pattern=r"^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)/")
    assert sorted((r["speaker"], r["label"]) for r in scan.rows) == [
        ("OAF", "angry"), ("OAF", "sad"), ("YAF", "angry"), ("YAF", "sad")]


def test_labels_and_speakers_from_file_names_anywhere_under_the_root(tmp_path):
    root = tmp_path / "c"
    write_tone(root / "DC" / "a01.wav", 0.3, freq=200)
    write_tone(root / "DC" / "sa02.wav", 0.3, freq=230)
    write_tone(root / "JE" / "a01.wav", 0.3, freq=260)
    write_tone(root / "KL" / "sa01.wav", 0.3, freq=350)
    write_tone(root / "JE" / "notes01.wav", 0.3, freq=290)  # label code the map does not know
    write_tone(root / "loose.wav", 0.3, freq=320)  # no speaker folder: does not match
    res = prepare(corpus="folders", root=root, out=tmp_path / "m", drop_invalid=True, unmapped="drop", canonical=True,
                  label_map="a=angry,sa=sad", path_pattern=r"^(?P<speaker>[A-Z]+)/(?P<label>[a-z]+)\d+\.")
    df = pd.read_csv(res.manifest)
    assert sorted(zip(df["speaker"], df["label"])) == [("DC", "angry"), ("DC", "sad"), ("JE", "angry"), ("KL", "sad")]
    assert [p.endswith("loose.wav") for p, _ in res.dropped] == [True]
    assert res.label_mapping["dropped"] == {"notes": 1}


@pytest.mark.parametrize("corpus, pattern, message", [
    ("folders", "(unclosed", "not a regular expression"),
    ("ravdess", r"(\d+)", "ravdess reads its file names itself"),
    ("folders", r"(?P<actor>\w+)", "unknown group 'actor'"),
])
def test_bad_patterns_are_one_line_errors(tmp_path, capsys, corpus, pattern, message):
    root = _urdu_like(tmp_path / "c", speakers=("SM1",), per=1)
    code = main(["prepare", "--corpus", corpus, "--root", str(root), "--out", str(tmp_path / "m"),
                 "--path-pattern", pattern])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "m" / "manifest.csv").exists()


def test_an_optional_speaker_group_that_matches_nothing_is_a_problem(tmp_path):
    write_tone(tmp_path / "c" / "happy" / "spk07_a.wav", 0.3)
    write_tone(tmp_path / "c" / "happy" / "take2.wav", 0.3, freq=300)
    scan = scan_corpus("folders", tmp_path / "c", path_pattern=r"(?:(?P<speaker>spk\d+)_)?\w+\.wav$")
    assert [r["speaker"] for r in scan.rows] == ["spk07"]
    assert len(scan.problems) == 1 and "gives no speaker" in scan.problems[0][1]
