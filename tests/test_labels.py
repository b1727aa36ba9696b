import pytest

from emovox.errors import BadLabel
from emovox.labels import BUILTIN, get_scheme, infer_scheme, scheme_spec


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
    assert set(BUILTIN) == {"crema-d-21", "crema-d-6", "ravdess-8", "ravdess-15"}
