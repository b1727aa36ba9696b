"""prepare's label mapping step: explicit maps (inline or CSV), the vocabulary, unmapped labels."""
import pytest

from emovox.data.label_map import map_rows, parse_label_map
from emovox.errors import BadConfig, BadLabel
from emovox.labels import get_scheme


def rows(*labels, field="label"):
    return [{"path": f"/c/{i}.wav", field: lab, "intensity": ""} for i, lab in enumerate(labels)]


def test_parse_inline_csv_and_dict(tmp_path):
    assert parse_label_map("gio=happy, rab = angry,") == {"gio": "happy", "rab": "angry"}
    assert parse_label_map({"exc": "happy"}) == {"exc": "happy"}
    assert parse_label_map(None) == {} == parse_label_map("")
    with_header = tmp_path / "m.csv"
    with_header.write_text("from,to\ngio,happy\nrab,angry\n\n")
    no_header = tmp_path / "n.csv"
    no_header.write_text("Ärger,angry\n")
    assert parse_label_map(with_header) == {"gio": "happy", "rab": "angry"}
    assert parse_label_map(str(no_header)) == {"Ärger": "angry"}


@pytest.mark.parametrize("spec,needle", [
    ("gio=happy,rab", "'rab' is not FROM=TO"),
    ("gio=", "needs a label on both sides"),
    ("gio=happy,gio=sad", "'gio' is mapped to both 'happy' and 'sad'"),
    ("missing.csv", "neither FROM=TO pairs"),
])
def test_parse_errors_name_the_text(spec, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadConfig, match=needle):
        parse_label_map(spec)
    bad = tmp_path / "three.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(BadConfig, match="row 1 has 3 column"):
        parse_label_map(bad)


def test_canonical_maps_names_codes_and_composite_emotion_parts():
    got = map_rows(rows("anger", "Freude", "gio", "ANG_HI", "sad_strong", "pleasant_surprise"), label_map={},
                   canonical=True, unmapped="error")
    assert [r["label"] for r in got.rows] == ["angry", "happy", "happy", "angry_HI", "sad_strong", "surprised"]
    assert got.renamed[("ANG", "angry")] == 1 and not got.dropped
    # adapters that give codes in the emotion column (CREMA-D) map that column
    by_emotion = map_rows(rows("NEU", "FEA", field="emotion"), label_map={}, canonical=True, unmapped="error")
    assert [r["emotion"] for r in by_emotion.rows] == ["neutral", "fearful"]


def test_label_map_first_matching_spellings_and_other_names_of_the_emotion():
    got = map_rows(rows("excited", "EXC", "hap", "neu", "fru"), label_map={"exc": "hap", "fru": "frustrated"},
                   canonical=True, unmapped="error")
    assert [r["label"] for r in got.rows] == ["happy", "happy", "happy", "neutral", "frustration"]
    # without --canonical the map renames and other labels stay as they are
    plain = map_rows(rows("gio", "rab", "xyz"), label_map={"gio": "joy"}, canonical=False, unmapped="error")
    assert [r["label"] for r in plain.rows] == ["joy", "rab", "xyz"]
    # a target the vocabulary does not know is kept as the user wrote it
    kept = map_rows(rows("gio", "pos"), label_map={"pos": "positive"}, canonical=True, unmapped="error")
    assert [r["label"] for r in kept.rows] == ["happy", "positive"]


def test_unmapped_error_is_one_line_with_every_label_and_count():
    with pytest.raises(BadLabel) as exc:
        map_rows(rows("a", "a", "sa", "angry", "sad"), label_map={}, canonical=True, unmapped="error", where="/corpus")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("/corpus: 3 clip(s)")
    assert "a (2), sa (1)" in msg and "--label-map" in msg and "--unmapped drop" in msg
    with pytest.raises(BadConfig, match="valid: error, drop"):
        map_rows(rows("a"), label_map={}, canonical=True, unmapped="skip")


def test_unmapped_drop_and_labels_outside_a_given_scheme():
    got = map_rows(rows("a", "angry", "calm", "neutral", "CALM"), label_map={}, canonical=True, unmapped="drop",
                   scheme=get_scheme("neutral,angry"))
    assert [r["label"] for r in got.rows] == ["angry", "neutral"]
    assert got.dropped == {"a": 1, "calm": 1, "CALM (as calm)": 1}
    assert got.summary()["dropped"] == {"CALM (as calm)": 1, "a": 1, "calm": 1}
    with pytest.raises(BadLabel, match=r"outside scheme 'custom' \(neutral, angry\): CALM \(as calm\) \(1\), calm \(1\)"):
        map_rows(rows("angry", "calm", "CALM"), label_map={}, canonical=True, unmapped="error",
                 scheme=get_scheme("neutral,angry"))
