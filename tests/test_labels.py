import pytest

from emovox.errors import BadLabel
from emovox.labels import (ALIASES, BUILTIN, CANONICAL, CORPUS_CODES, DEFAULT_FOR_CORPUS, canonical_name,
                           canonical_names, get_scheme, infer_scheme, map_scheme, scheme_spec)


def test_crema_21_has_the_reference_classes():
    s = get_scheme("crema-d-21")
    assert len(s) == 21 and s.composite
    assert "NEU_XX" in s and "NEU_HI" not in s
    assert {lab.split("_")[0] for lab in s.labels} == {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}
    assert s.labels == tuple(sorted(s.labels))


def test_composite_split_and_join_round_trip():
    s = get_scheme("crema-d-21")
    for lab in s.labels:
        emo, inten = s.split(lab)
        assert s.join(emo, inten) == lab
        assert s.label_for(emo, inten) == lab
    assert s.emotions == ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
    assert set(s.intensities) == {"HI", "LO", "MD", "XX"}


def test_ravdess_schemes():
    assert len(get_scheme("ravdess-8")) == 8
    r15 = get_scheme("ravdess-15")
    assert len(r15) == 15 and "neutral_normal" in r15 and "neutral_strong" not in r15
    assert r15.label_for("angry", "strong") == "angry_strong"
    assert get_scheme("ravdess-8").label_for("angry", "strong") == "angry"


def test_custom_and_errors():
    s = get_scheme("pos, neg ,neu")
    assert s.labels == ("pos", "neg", "neu") and s.id("neg") == 1
    with pytest.raises(BadLabel, match="built-in: crema-d-21"):
        get_scheme("nonsense")
    with pytest.raises(BadLabel, match="valid: pos, neg, neu"):
        s.id("happy")
    with pytest.raises(BadLabel):
        get_scheme("a,a")
    with pytest.raises(BadLabel, match="no label"):
        get_scheme("crema-d-21").label_for("NEU", "HI")


def test_infer_scheme_is_exactly_the_labels_present():
    assert infer_scheme(get_scheme("crema-d-6").labels) == get_scheme("crema-d-6")
    assert infer_scheme(reversed(get_scheme("ravdess-8").labels)) == get_scheme("ravdess-8")
    # a subset of a built-in scheme keeps its order and structure but has no empty classes
    sub = infer_scheme(["SAD", "ANG"])
    assert sub.name == "custom" and sub.labels == ("ANG", "SAD") and not sub.composite
    comp = infer_scheme(["NEU_XX", "ANG_HI"])
    assert comp.labels == ("ANG_HI", "NEU_XX") and comp.composite and comp.split("ANG_HI") == ("ANG", "HI")
    assert infer_scheme(["sad", "happy", "angry", "neutral"]).labels == ("neutral", "happy", "sad", "angry")
    custom = infer_scheme(["b", "a"])
    assert custom.name == "custom" and custom.labels == ("a", "b")
    # a scheme's config spelling resolves back to the same scheme
    for scheme in (sub, comp, custom, get_scheme("ravdess-15")):
        assert get_scheme(scheme_spec(scheme)) == scheme
    assert set(BUILTIN) == {"crema-d-21", "crema-d-6", "ravdess-8", "ravdess-15", "emovo-7", "emodb-7"}
    # labels that are all canonical names but fit no built-in scheme come in canonical order
    assert infer_scheme(["undecided", "frustration", "excited", "neutral"]).labels == (
        "neutral", "excited", "frustration", "undecided")


# Every corpus vocabulary the issue names, spelled as the corpus spells it -> canonical name.
VOCABULARIES = {
    "crema-d": {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"},
    "iemocap": {"ang": "angry", "hap": "happy", "exc": "excited", "sad": "sad", "neu": "neutral", "fru": "frustration",
                "fea": "fearful", "sur": "surprised", "dis": "disgust", "oth": "other", "xxx": "undecided"},
    "emovo": {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fearful", "rab": "angry", "sor": "surprised",
              "tri": "sad"},
    "emodb-german": {"Wut": "angry", "Ärger": "angry", "Langeweile": "boredom", "Ekel": "disgust", "Angst": "fearful",
                     "Freude": "happy", "Trauer": "sad", "neutral": "neutral"},
    "english": {"anger": "angry", "angry": "angry", "happiness": "happy", "joy": "happy", "happy": "happy",
                "fear": "fearful", "fearful": "fearful", "sadness": "sad", "surprise": "surprised",
                "surprised": "surprised", "disgust": "disgust", "calm": "calm", "neutral": "neutral",
                "boredom": "boredom", "Pleasant_Surprise": "surprised", "frustrated": "frustration"},
    "spellings": {"ÄRGER": "angry", "aerger": "angry", "arger": "angry", "Felicità": "happy", "felicita": "happy",
                  " Sadness ": "sad", "ueberraschung": "surprised"},
}


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_every_corpus_vocabulary_lands_in_canonical_names(vocabulary):
    table = VOCABULARIES[vocabulary]
    assert {lab: canonical_name(lab) for lab in table} == table
    assert canonical_names(table) == {lab.strip(): name for lab, name in table.items()}


def test_corpus_codes_apply_only_when_every_unknown_label_is_one():
    emodb = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
    assert CORPUS_CODES["emodb"] == emodb and canonical_names(emodb) == emodb
    assert canonical_names(["W", "A", "neutral"]) == {"W": "angry", "A": "fearful", "neutral": "neutral"}
    ravdess = canonical_names([f"{i:02d}" for i in range(1, 9)])
    assert list(ravdess.values()) == list(get_scheme("ravdess-8").labels)
    # SAVEE's "a" is anger, EmoDB's "A" fear: a lower-case or mixed set is not read as EmoDB
    assert canonical_names(["a", "sa", "su", "n"]) == {"a": None, "sa": None, "su": None, "n": None}
    assert canonical_names(["A", "09"]) == {"A": None, "09": None}
    assert canonical_name("W") is None  # a bare letter alone means nothing outside its corpus


def test_canonical_names_are_the_schemes_own_and_aliases_point_inside():
    assert CANONICAL[:8] == get_scheme("ravdess-8").labels
    assert set(ALIASES.values()) <= set(CANONICAL) and all("_" not in c for c in CANONICAL)
    assert set(get_scheme("emovo-7").labels) | {"calm", "boredom"} == set(CANONICAL[:9])
    assert DEFAULT_FOR_CORPUS["emovo"] == "emovo-7" and DEFAULT_FOR_CORPUS["emodb"] == "emodb-7"
    assert "iemocap" not in DEFAULT_FOR_CORPUS


def test_map_scheme_maps_the_emotion_part_of_composite_schemes():
    c21 = get_scheme("crema-d-21")
    mapped = map_scheme(c21, canonical_names(c21.emotions))
    assert len(mapped) == 21 and mapped.composite and "angry_HI" in mapped and "neutral_XX" in mapped
    assert mapped.split("angry_HI") == ("angry", "HI") and mapped.emotions[0] == "angry"
    # its config spelling resolves back to the same composite scheme
    assert get_scheme(scheme_spec(mapped)) == mapped
    # merged emotions become one class; dropped ones leave
    merged = map_scheme(get_scheme("neu,hap,exc,sad"), {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": None})
    assert merged.labels == ("neutral", "happy")
    assert map_scheme(get_scheme("ravdess-8"), canonical_names(CANONICAL)) is get_scheme("ravdess-8")
    with pytest.raises(BadLabel, match="no label"):
        map_scheme(get_scheme("a,b"), {"a": None, "b": None})
