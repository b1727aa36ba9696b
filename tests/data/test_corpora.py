from pathlib import Path

import pandas as pd
import pytest

from emovox.data.corpora import scan_corpus
from emovox.errors import BadManifest
from emovox.testing import write_tone


def test_crema_names_parse(tmp_path):
    write_tone(tmp_path / "1001_DFA_ANG_XX.wav", 0.3)
    write_tone(tmp_path / "sub" / "1077_IEO_SAD_LO.wav", 0.3)
    (tmp_path / "notes.txt").write_text("ignored")
    scan = scan_corpus("crema-d", tmp_path)
    rows = {Path(r["path"]).name: r for r in scan.rows}
    assert set(rows) == {"1001_DFA_ANG_XX.wav", "1077_IEO_SAD_LO.wav"} and not scan.problems
    r = rows["1077_IEO_SAD_LO.wav"]
    assert (r["speaker"], r["sentence"], r["emotion"], r["intensity"]) == ("1077", "IEO", "SAD", "LO")


def test_ravdess_names_parse_and_skip_song(tmp_path):
    write_tone(tmp_path / "Actor_21" / "03-01-05-02-01-01-21.wav", 0.3)
    write_tone(tmp_path / "Actor_21" / "03-02-05-02-01-01-21.wav", 0.3)  # song: skipped
    write_tone(tmp_path / "Actor_21" / "03-01-01-02-01-01-21.wav", 0.3)  # neutral strong: invalid
    write_tone(tmp_path / "Actor_21" / "03-01-09-01-01-01-21.wav", 0.3)  # unknown emotion
    scan = scan_corpus("ravdess", tmp_path)
    assert len(scan.rows) == 1 and len(scan.problems) == 2
    r = scan.rows[0]
    assert (r["speaker"], r["emotion"], r["intensity"], r["sentence"]) == ("21", "angry", "strong", "kids")
    assert any("song or video" in n for n in scan.notes)


def test_csv_single_file_keeps_splits_relative_paths(tmp_path):
    for name in ("a.wav", "b.wav"):
        write_tone(tmp_path / "audio" / name, 0.3)
    pd.DataFrame({"path": ["audio/a.wav", "audio/b.wav"], "label": ["x", "y"], "speaker": ["s1", "s2"],
                  "split": ["train", "val"]}).to_csv(tmp_path / "t.csv", index=False)
    rows = scan_corpus("csv", tmp_path / "t.csv").rows
    assert [r["split"] for r in rows] == ["train", "validation"]
    assert Path(rows[0]["path"]) == (tmp_path / "audio" / "a.wav").resolve()


def test_csv_folder_of_split_files_like_reference_recipe(tmp_path):
    for split in ("train", "validation", "test"):
        write_tone(tmp_path / f"{split}.wav", 0.3)
        pd.DataFrame({"file": [f"{split}.wav"], "emotion": ["ANG_HI"]}).to_csv(tmp_path / f"{split}.csv", index=False)
    rows = scan_corpus("csv", tmp_path).rows
    assert [r["split"] for r in rows] == ["train", "validation", "test"]
    assert all(r["label"] == "ANG_HI" for r in rows)


def test_csv_errors_name_the_problem(tmp_path):
    pd.DataFrame({"wav_file": ["a.wav"], "label": ["x"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(BadManifest, match="no path column"):
        scan_corpus("csv", tmp_path / "t.csv")
    (tmp_path / "d").mkdir()
    with pytest.raises(BadManifest, match="train.csv"):
        scan_corpus("csv", tmp_path / "d")


def test_folders(tmp_path):
    write_tone(tmp_path / "happy" / "x1.wav", 0.3)
    write_tone(tmp_path / "sad" / "deep" / "x2.flac", 0.3)
    write_tone(tmp_path / "loose.wav", 0.3)
    scan = scan_corpus("folders", tmp_path)
    assert sorted(r["label"] for r in scan.rows) == ["happy", "sad"]
    assert len(scan.problems) == 1 and "label folder" in scan.problems[0][1]


def test_unknown_corpus(tmp_path):
    with pytest.raises(BadManifest, match="valid: crema-d, ravdess, emovo, emodb, iemocap, csv, folders, hf"):
        scan_corpus("savee", tmp_path)


def test_emovo_names_parse_into_canonical_emotions_and_gender(tmp_path):
    from emovox.testing import make_emovo_corpus

    files = make_emovo_corpus(tmp_path, speakers=("f1", "m3"), sentences=("b1", "n5"), ext="flac")
    write_tone(tmp_path / "f1" / "xyz-f1-b1.wav", 0.3)  # unknown emotion code
    write_tone(tmp_path / "f1" / "dis_f1_b1.wav", 0.3)  # wrong separators
    scan = scan_corpus("emovo", tmp_path)
    assert len(scan.rows) == len(files) == 2 * 7 * 2 and len(scan.problems) == 2
    assert any("unknown emotion code 'xyz'" in reason for _, reason in scan.problems)
    rows = {Path(r["path"]).name: r for r in scan.rows}
    r = rows["gio-m3-n5.flac"]
    assert (r["speaker"], r["sentence"], r["emotion"], r["gender"]) == ("m3", "n5", "happy", "male")
    assert {r["emotion"] for r in scan.rows} == {"disgust", "happy", "neutral", "fearful", "angry", "surprised", "sad"}
    assert {r["speaker"]: r["gender"] for r in scan.rows} == {"f1": "female", "m3": "male"}


def test_emodb_names_parse_into_canonical_emotions_and_documented_gender(tmp_path):
    from emovox.testing import EMODB_SPEAKERS, make_emodb_corpus

    make_emodb_corpus(tmp_path, speakers=EMODB_SPEAKERS, emotions=("W", "L", "N"), texts=("a01",))
    write_tone(tmp_path / "wav" / "03a01Xa.wav", 0.3)  # unknown emotion letter
    write_tone(tmp_path / "wav" / "3a01Fa.wav", 0.3)  # one-digit speaker
    write_tone(tmp_path / "wav" / "99b10Tc.wav", 0.3)  # not a documented actor: kept, gender unknown
    scan = scan_corpus("emodb", tmp_path)
    assert len(scan.rows) == 10 * 3 + 1 and len(scan.problems) == 2
    assert any("unknown emotion letter 'X'" in reason for _, reason in scan.problems)
    rows = {Path(r["path"]).name: r for r in scan.rows}
    r = rows["03a01Wa.wav"]
    assert (r["speaker"], r["sentence"], r["emotion"], r["gender"]) == ("03", "a01", "angry", "male")
    assert rows["16a01La.wav"]["emotion"] == "boredom" and rows["99b10Tc.wav"]["emotion"] == "sad"
    genders = {r["speaker"]: r["gender"] for r in scan.rows}
    assert [s for s, g in genders.items() if g == "male"] == ["03", "10", "11", "12", "15"]
    assert [s for s, g in genders.items() if g == "female"] == ["08", "09", "13", "14", "16"]
    assert genders["99"] == "" and any("99" in n for n in scan.notes)


def test_iemocap_release_layout_labels_speakers_and_gender(tmp_path):
    from emovox.testing import make_iemocap_corpus

    files = make_iemocap_corpus(tmp_path, sessions=(1, 5))
    write_tone(tmp_path / "Session1" / "dialog" / "wav" / "Ses01F_impro01.wav", 0.3)  # dialog audio: not a row
    write_tone(tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F099.wav", 0.3)
    (files[0]).unlink()  # labelled, audio missing
    scan = scan_corpus("iemocap", tmp_path)
    assert len(scan.rows) == len(files) - 1
    reasons = {Path(p).name: reason for p, reason in scan.problems}
    assert "no label" in reasons["Ses01F_impro01_F099.wav"] and "missing" in reasons[files[0].name]
    rows = {Path(r["path"]).stem: r for r in scan.rows}
    r = rows["Ses05F_impro01_M001"]
    assert (r["speaker"], r["emotion"], r["gender"]) == ("05M", "happy", "male")
    assert rows["Ses05F_impro01_F002"]["emotion"] == "excited"  # kept apart from happy
    assert rows["Ses01F_impro01_M006"]["emotion"] == "undecided"  # xxx: no majority
    assert {r["speaker"] for r in scan.rows} == {"01F", "01M", "05F", "05M"}
    with pytest.raises(BadManifest, match="EmoEvaluation"):
        scan_corpus("iemocap", tmp_path / "Session1" / "sentences")
