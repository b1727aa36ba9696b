"""``prepare --corpus hf``: save_to_disk, Parquet and audiofolder datasets become the same manifest."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

pytest.importorskip("datasets")

from emovox.cli import main  # noqa: E402
from emovox.data.corpora import parse_split_map  # noqa: E402
from emovox.data.prepare import prepare  # noqa: E402
from emovox.errors import BadConfig, BadManifest, InvalidCorpus  # noqa: E402
from emovox.testing import HF_LABELS, HF_SPLITS, hf_records, make_hf_dataset  # noqa: E402

FIELDS = ["speaker", "sentence", "emotion", "intensity", "label", "duration", "split", "corpus"]


def _prepared(tmp_path, layout: str, **kwargs):
    root = make_hf_dataset(tmp_path / layout, layout=layout, **{k: kwargs.pop(k) for k in ("splits", "labels")
                                                                 if k in kwargs})
    res = prepare(corpus="hf", root=root, out=tmp_path / f"out-{layout}", workers=1, **kwargs)
    return res, pd.read_csv(res.manifest, dtype=str, keep_default_na=False)


def test_save_to_disk_and_parquet_give_the_same_manifest_rows_and_keep_the_splits(tmp_path):
    res_a, a = _prepared(tmp_path, "save_to_disk")
    res_b, b = _prepared(tmp_path, "parquet")
    records = hf_records()
    assert res_a.rows == res_b.rows == sum(len(r) for r in records.values())
    pd.testing.assert_frame_equal(a[FIELDS], b[FIELDS])
    # splits are the dataset's own, speakers as given, labels the ClassLabel names
    for split, speakers in HF_SPLITS.items():
        part = a[a["split"] == split]
        assert set(part["speaker"]) == set(speakers)
        assert sorted(part["label"]) == sorted(r["emotion"] for r in records[split])
    assert set(a["corpus"]) == {"hf"}
    # each clip written once, as 16 kHz FLAC under the output folder, holding the same samples
    for pa, pb in zip(a["path"], b["path"]):
        assert pa.startswith(str(tmp_path / "out-save_to_disk" / "audio")) and pa.endswith(".flac")
        wa, sra = sf.read(pa)
        wb, srb = sf.read(pb)
        assert sra == srb == 16000 and wa.ndim == 1
        np.testing.assert_array_equal(wa, wb)
    # the clips were 22.05 kHz (half of them stereo): duration survives the resampling
    first = records["train"][0]
    assert float(a.loc[0, "duration"]) == pytest.approx(0.25, abs=1e-3)
    assert first["emotion"] == a.loc[0, "label"]


def test_audiofolder_with_metadata_csv(tmp_path):
    _, a = _prepared(tmp_path, "audiofolder")
    _, b = _prepared(tmp_path, "save_to_disk")
    key = ["split", "speaker", "label"]
    pd.testing.assert_frame_equal(a.sort_values(key)[FIELDS].reset_index(drop=True),
                                  b.sort_values(key)[FIELDS].reset_index(drop=True))


def test_a_missing_label_column_names_the_columns_that_exist(tmp_path, capsys):
    root = make_hf_dataset(tmp_path / "ds", layout="parquet")
    capsys.readouterr()
    code = main(["prepare", "--corpus", "hf", "--root", str(root), "--out", str(tmp_path / "o"),
                 "--hf-label", "mood"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "'mood' is not a column" in err[0] and all(c in err[0] for c in ("audio", "emotion", "speaker_id"))
    assert "Traceback" not in err[0]


def test_no_label_column_at_all(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"audio": [r["audio"] for r in hf_records()["train"]],
                                     "who": [r["speaker_id"] for r in hf_records()["train"]]})
    ds.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(BadManifest, match=r"no label column.*columns: audio, who.*--hf-label"):
        prepare(corpus="hf", root=tmp_path / "ds", out=tmp_path / "o")


def test_named_columns_and_split_mapping(tmp_path):
    splits = {"train": ("s1", "s2", "s3"), "dev": ("s4",), "heldout": ("s5",)}
    with pytest.raises(BadManifest, match=r"heldout.*have no emovox name.*--hf-split"):
        _prepared(tmp_path, "save_to_disk", splits=splits)
    res = prepare(corpus="hf", root=tmp_path / "save_to_disk", out=tmp_path / "o", workers=1,
                  hf_label="emotion", hf_speaker="speaker_id", hf_split="train=train,validation=dev,test=heldout")
    df = pd.read_csv(res.manifest, dtype=str)
    assert df.groupby("split")["speaker"].agg(lambda s: tuple(sorted(set(s)))).to_dict() == {
        "train": ("s1", "s2", "s3"), "validation": ("s4",), "test": ("s5",)}
    with pytest.raises(BadManifest, match=r"split\(s\) nope that do not exist.*train, dev, heldout"):
        prepare(corpus="hf", root=tmp_path / "save_to_disk", out=tmp_path / "o", hf_split="train=train,test=nope")


def test_a_single_split_gets_speaker_independent_splits(tmp_path):
    speakers = {"train": tuple(f"s{i}" for i in range(1, 9))}
    res, df = _prepared(tmp_path, "parquet", splits=speakers)
    assert set(df["split"]) == {"train", "validation", "test"}
    assert df.groupby("speaker")["split"].nunique().max() == 1
    assert any("one split" in n for n in res.notes)


def test_train_and_test_only_carve_validation_from_train_speakers(tmp_path):
    splits = {"train": tuple(f"s{i}" for i in range(1, 8)), "test": ("s8",)}
    res, df = _prepared(tmp_path, "save_to_disk", splits=splits)
    assert set(df.loc[df["split"] == "test", "speaker"]) == {"s8"}
    val = set(df.loc[df["split"] == "validation", "speaker"])
    assert val and val <= set(splits["train"]) and not val & set(df.loc[df["split"] == "train", "speaker"])
    assert any("no validation split" in n for n in res.notes)


def test_bad_audio_is_named_by_row_and_drop_invalid_keeps_the_rest(tmp_path):
    import datasets

    rows = hf_records({"train": ("s1", "s2", "s3")})["train"]
    rows[2]["audio"] = {"bytes": b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(40)), "path": "broken.wav"}
    rows[5]["audio"] = {"bytes": np.zeros(800, dtype="<i2").tobytes(), "path": "raw.pcm"}
    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  "emotion": datasets.ClassLabel(names=list(HF_LABELS)),
                                  "speaker_id": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
    ds.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InvalidCorpus) as exc:
        prepare(corpus="hf", root=tmp_path / "ds", out=tmp_path / "o", workers=1)
    where = [p for p, _ in exc.value.problems]
    assert len(where) == 2 and "row 2 (broken.wav)" in where[0] and "row 5 (raw.pcm)" in where[1]
    assert all("not readable as audio" in r for _, r in exc.value.problems)
    res = prepare(corpus="hf", root=tmp_path / "ds", out=tmp_path / "o", workers=1, drop_invalid=True)
    assert res.rows == len(rows) - 2
    invalid = pd.read_csv(tmp_path / "o" / "invalid.csv")
    assert list(invalid["path"]) == where


def test_split_map_syntax_and_options_for_other_corpora(tmp_path):
    assert parse_split_map("train=train, validation=dev ,test=test") == {"train": "train", "validation": "dev",
                                                                         "test": "test"}
    with pytest.raises(BadConfig, match="not an emovox split"):
        parse_split_map("dev=validation")
    with pytest.raises(BadConfig, match="EMOVOX_SPLIT=DATASET_SPLIT"):
        parse_split_map("train")
    (tmp_path / "c").mkdir()
    with pytest.raises(BadManifest, match="apply to --corpus hf"):
        prepare(corpus="crema-d", root=tmp_path / "c", out=tmp_path / "o", hf_label="emotion")
    with pytest.raises(BadManifest, match="not a Hugging Face dataset folder"):
        prepare(corpus="hf", root=tmp_path / "c", out=tmp_path / "o")


def test_group_columns_are_passed_through(tmp_path):
    import datasets

    recs = hf_records({"train": ("s1", "s2"), "validation": ("s3",), "test": ("s4",)})
    rows = [dict(r, gender="F" if r["speaker_id"] in ("s1", "s3") else "M", age=30) for rs in recs.values() for r in rs]
    ds = datasets.Dataset.from_list(rows)
    ds.save_to_disk(str(tmp_path / "ds"))
    res = prepare(corpus="hf", root=tmp_path / "ds", out=tmp_path / "p", workers=1)
    df = pd.read_csv(res.manifest, dtype=str)
    assert dict(zip(df["speaker"], df["gender"])) == {"s1": "female", "s2": "male", "s3": "female", "s4": "male"}
    assert set(df["age"]) == {"30"}
