"""Speaker-group columns: adapters fill gender where the corpus documents it, CSV and Hugging Face
tables pass group columns through, and the manifest keeps them."""
import pandas as pd
import pytest

from emovox.data.corpora import scan_corpus
from emovox.data.corpora.demographics import gender_from_prefix, group_columns, normalise_group, ravdess_gender
from emovox.data.manifest import COLUMNS
from emovox.data.prepare import prepare
from emovox.errors import BadManifest
from emovox.testing import make_crema_corpus, write_tone


def test_spellings_become_one():
    assert [normalise_group("gender", v) for v in ("F", "female", " Woman", "m", "Male", "", None)] == \
        ["female", "female", "female", "male", "male", "", ""]
    assert normalise_group("age", " 34 ") == "34"
    assert [ravdess_gender(a) for a in ("01", "02", "23", "24")] == ["male", "female", "male", "female"]
    assert [gender_from_prefix(s) for s in ("f1", "m3", "x9")] == ["female", "male", ""]
    assert group_columns(["Sex", "AGE", "locale", "other"]) == {"gender": "Sex", "age": "AGE", "language": "locale"}


def test_ravdess_odd_actors_are_male_and_the_manifest_keeps_it(tmp_path):
    for actor in ("01", "02", "03", "04"):
        for emo in ("01", "05"):
            for rep in ("01", "02"):
                write_tone(tmp_path / "rav" / f"Actor_{actor}" / f"03-01-{emo}-01-01-{rep}-{actor}.wav", 0.3,
                           freq=150 + 20 * int(actor) + int(emo), seed=int(rep))
    res = prepare(corpus="ravdess", root=tmp_path / "rav", out=tmp_path / "p", workers=1, test_speakers=["04"])
    df = pd.read_csv(res.manifest, dtype=str)
    assert list(df.columns) == [*COLUMNS, "gender"]
    assert dict(zip(df["speaker"], df["gender"])) == {"01": "male", "02": "female", "03": "male", "04": "female"}


def test_crema_demographics_table_beside_audiowav(tmp_path):
    audio = tmp_path / "CREMA-D" / "AudioWAV"
    make_crema_corpus(audio, actors=(1001, 1002))
    scan = scan_corpus("crema-d", audio)
    assert {r["gender"] for r in scan.rows} == {""}  # no table: nothing is guessed
    (tmp_path / "CREMA-D" / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Asian,Not Hispanic\n")
    scan = scan_corpus("crema-d", audio)
    by_actor = {r["speaker"]: (r["gender"], r["age"], r["race"]) for r in scan.rows}
    assert by_actor == {"1001": ("male", "51", "Caucasian"), "1002": ("female", "21", "Asian")}
    assert any("VideoDemographics" in n for n in scan.notes)
    (tmp_path / "CREMA-D" / "VideoDemographics.csv").write_text("Actor,Sex\n1001,Male\n")
    with pytest.raises(BadManifest, match="VideoDemographics.csv: no ActorID column"):
        scan_corpus("crema-d", audio)


def test_csv_passes_group_columns_through_and_a_corpus_without_them_keeps_the_columns(tmp_path, tiny_manifest):
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        write_tone(tmp_path / name, 0.3, seed=ord(name[0]))
    (tmp_path / "t.csv").write_text("path,label,speaker,Sex,language,note\na.wav,pos,s1,F,it,x\nb.wav,neg,s1,F,it,y\n"
                                    "c.wav,pos,s2,M,en,z\nd.wav,neg,s2,M,en,w\n")
    rows = scan_corpus("csv", tmp_path / "t.csv").rows
    assert [(r["gender"], r["language"]) for r in rows] == [("female", "it"), ("female", "it"), ("male", "en"),
                                                             ("male", "en")]
    assert "note" not in rows[0]
    assert list(pd.read_csv(tiny_manifest).columns) == list(COLUMNS)  # CREMA-D without its table
