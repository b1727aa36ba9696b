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
    with pytest.raises(BadManifest, match="valid: crema-d, ravdess, csv, folders"):
        scan_corpus("iemocap", tmp_path)
