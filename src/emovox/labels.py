"""Label schemes: the one place that knows label names, their ids and composite structure.

A composite scheme (e.g. CREMA-D emotion x intensity) has labels ``EMOTION_INTENSITY`` that split
into ``(emotion, intensity)`` and join back. Flat schemes have one label per emotion.

The emotion vocabulary lives here too: the canonical emotion names (``CANONICAL``, RAVDESS's
names plus the ones other corpora add) and the names and codes corpora use for them
(``ALIASES``, ``CORPUS_CODES``), so ``prepare --canonical`` lands every corpus in one vocabulary.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .errors import BadLabel

SEP = "_"
UNKNOWN_INTENSITY = {"XX", "unknown", ""}

CREMA_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_INTENSITIES = ("HI", "LO", "MD", "XX")
RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
RAVDESS_INTENSITIES = ("normal", "strong")

# The canonical emotion names, in the order schemes list them: RAVDESS's eight first (the names
# emovo's RAVDESS schemes already use), then what other corpora add. ``undecided`` is not an emotion:
# IEMOCAP's ``xxx``, utterances whose evaluators reached no majority.
CANONICAL = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom",
             "excited", "frustration", "contempt", "other", "undecided")

# Names and codes corpora use, by canonical name. Spelling is normalised before look-up (case,
# accents, spaces/hyphens/underscores), so ``Ärger``, ``aerger`` and ``ANGER`` all match. Only
# codes that mean the same wherever they occur are here (CREMA-D's ANG..SAD, IEMOCAP's ang..xxx and
# EMOVO's dis..tri agree where they overlap); one-letter and numeric codes are in CORPUS_CODES.
_NAMES: dict[str, tuple[str, ...]] = {
    "neutral": ("neu", "neutral", "neutrality", "neutrale", "neutro", "neutra"),
    "calm": ("calm", "calmness", "calmo", "ruhig"),
    "happy": ("hap", "happy", "happiness", "joy", "joyful", "glad", "gio", "gioia", "felice", "felicità",
              "freude", "fröhlich", "glücklich"),
    "sad": ("sad", "sadness", "sorrow", "tri", "tristezza", "triste", "trauer", "traurig"),
    "angry": ("ang", "angry", "anger", "rab", "rabbia", "arrabbiato", "wut", "ärger", "wütend", "verärgert"),
    "fearful": ("fea", "fear", "fearful", "afraid", "scared", "pau", "paura", "angst", "ängstlich"),
    "disgust": ("dis", "disgust", "disgusted", "disgusto", "ekel", "angeekelt"),
    "surprised": ("sur", "surprise", "surprised", "pleasant surprise", "ps", "sor", "sorpresa", "sorpreso",
                  "überraschung", "überrascht"),
    "boredom": ("boredom", "bored", "noia", "annoiato", "langeweile", "gelangweilt"),
    "excited": ("exc", "excited", "excitement"),
    "frustration": ("fru", "frustration", "frustrated"),
    "contempt": ("contempt",),
    "other": ("oth", "other"),
    "undecided": ("xxx",),
}

# Codes that mean an emotion only inside one corpus (a SAVEE "a" is anger, an EmoDB "A" is fear), as
# the corpus spells them (case counts). ``--canonical`` uses a code set only when every label the
# names above do not know is one of its codes.
CORPUS_CODES: dict[str, dict[str, str]] = {
    "ravdess": {f"{i:02d}": name for i, name in enumerate(RAVDESS_EMOTIONS, start=1)},
    # EmoDB: W Wut/Ärger, L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral
    "emodb": {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad",
              "N": "neutral"},
}
KNOWN_INTENSITIES = frozenset((*CREMA_INTENSITIES, *RAVDESS_INTENSITIES))


@dataclass(frozen=True)
class LabelScheme:
    """An ordered set of class names; ids are positions.

    Attributes:
        name: Scheme name (built-in name or "custom").
        labels: Class names in id order.
        composite: True when labels are ``emotion_intensity`` pairs.
    """

    name: str
    labels: tuple[str, ...]
    composite: bool = False
    _index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise BadLabel(f"scheme {self.name!r} must list distinct, non-empty labels: {self.labels}")
        object.__setattr__(self, "_index", {lab: i for i, lab in enumerate(self.labels)})

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return dict(self._index)

    def id(self, label: str) -> int:
        """Return the id of ``label``.

        Raises:
            BadLabel: the label is not in the scheme (the message lists valid ones).
        """
        try:
            return self._index[label]
        except KeyError:
            raise BadLabel(
                f"label {label!r} is not in scheme {self.name!r}; valid: {', '.join(self.labels)}"
            ) from None

    def coerce(self, label: str) -> str:
        """A manifest label as this scheme names it: unchanged when it is in the scheme, else its
        emotion when only that is (``ANG_HI`` -> ``ANG`` for an emotion-only scheme)."""
        if label in self._index:
            return label
        emotion = label.rpartition(SEP)[0]
        return emotion if emotion in self._index else label

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def split(self, label: str) -> tuple[str, str]:
        """Split a label into ``(emotion, intensity)``; flat labels get intensity ``XX``."""
        self.id(label)
        if not self.composite:
            return label, "XX"
        emotion, _, intensity = label.rpartition(SEP)
        return emotion, intensity

    @staticmethod
    def join(emotion: str, intensity: str) -> str:
        return f"{emotion}{SEP}{intensity}"

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.split(lab)[0] for lab in self.labels))

    @property
    def intensities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.split(lab)[1] for lab in self.labels))

    def label_for(self, emotion: str, intensity: str | None) -> str:
        """Map a manifest row's (emotion, intensity) to this scheme's label.

        Raises:
            BadLabel: the combination has no label in this scheme.
        """
        intensity = intensity or "XX"
        label = self.join(emotion, intensity) if self.composite else emotion
        if label not in self._index:
            raise BadLabel(
                f"emotion {emotion!r} with intensity {intensity!r} has no label in scheme "
                f"{self.name!r}; valid: {', '.join(self.labels)}"
            )
        return label

    def to_dict(self) -> dict:
        return {"name": self.name, "labels": list(self.labels), "composite": self.composite}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelScheme":
        return cls(name=d["name"], labels=tuple(d["labels"]), composite=bool(d.get("composite")))


def _crema21() -> LabelScheme:
    labels = [f"{e}{SEP}{i}" for e in CREMA_EMOTIONS if e != "NEU" for i in CREMA_INTENSITIES]
    # alphabetical order, as the reference recipe's label list
    return LabelScheme("crema-d-21", tuple(sorted([*labels, f"NEU{SEP}XX"])), composite=True)


def _ravdess15() -> LabelScheme:
    labels = [f"{e}{SEP}{i}" for e in RAVDESS_EMOTIONS for i in RAVDESS_INTENSITIES]
    labels.remove(f"neutral{SEP}strong")
    return LabelScheme("ravdess-15", tuple(labels), composite=True)


def _canonical_scheme(name: str, emotions: Iterable[str]) -> LabelScheme:
    wanted = set(emotions)
    return LabelScheme(name, tuple(e for e in CANONICAL if e in wanted))


BUILTIN: dict[str, LabelScheme] = {
    s.name: s
    for s in (
        _crema21(),
        LabelScheme("crema-d-6", CREMA_EMOTIONS),
        LabelScheme("ravdess-8", RAVDESS_EMOTIONS),
        _ravdess15(),
        _canonical_scheme("emovo-7", ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")),
        _canonical_scheme("emodb-7", ("neutral", "happy", "sad", "angry", "fearful", "disgust", "boredom")),
    )
}

# IEMOCAP has none: its labels are kept as the corpus gives them (see the README for the usual
# four-class selection with ``excited`` merged into ``happy``).
DEFAULT_FOR_CORPUS = {"crema-d": "crema-d-21", "ravdess": "ravdess-8", "emovo": "emovo-7", "emodb": "emodb-7"}


def get_scheme(spec: str | Sequence[str] | LabelScheme) -> LabelScheme:
    """Resolve a scheme from a built-in name, a comma-separated list or a sequence of labels.

    Raises:
        BadLabel: unknown name or an empty/duplicated list.
    """
    if isinstance(spec, LabelScheme):
        return spec
    if isinstance(spec, str):
        if spec in BUILTIN:
            return BUILTIN[spec]
        if "," not in spec:
            raise BadLabel(
                f"unknown label scheme {spec!r}; built-in: {', '.join(BUILTIN)}, "
                "or give a comma-separated list of labels"
            )
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    composite = (any(s.composite and set(spec) <= set(s.labels) for s in BUILTIN.values())
                 or all(_canonical_composite(lab) for lab in spec))
    return LabelScheme("custom", tuple(spec), composite)


def _canonical_composite(label: str) -> bool:
    """``angry_HI``-shaped: a canonical emotion joined to a known intensity (a composite scheme
    mapped into canonical names, e.g. crema-d-21 with ``--canonical``)."""
    emotion, sep, intensity = label.rpartition(SEP)
    return bool(sep) and emotion in CANONICAL and intensity in KNOWN_INTENSITIES


def infer_scheme(labels: Iterable[str]) -> LabelScheme:
    """The built-in scheme whose labels are exactly these; else a custom scheme of just these labels
    (in the order, and with the composite structure, of the smallest built-in scheme holding them,
    or sorted). Never a scheme with classes the data lacks: a model would have outputs no clip
    ever trained. With no labels at all, the smallest built-in scheme (labels come from codes)."""
    present = set(labels)
    fits = sorted((s for s in BUILTIN.values() if present <= set(s.labels)), key=len)
    if not present:
        return fits[0]
    if fits and set(fits[0].labels) == present:
        return fits[0]
    if fits:
        return LabelScheme("custom", tuple(lab for lab in fits[0].labels if lab in present), fits[0].composite)
    if present <= set(CANONICAL):
        return _canonical_scheme("custom", present)
    return LabelScheme("custom", tuple(sorted(present)))


def scheme_spec(scheme: LabelScheme) -> str:
    """How a config names ``scheme`` (``data.scheme``): a built-in name, else its labels comma-joined."""
    if BUILTIN.get(scheme.name) == scheme:
        return scheme.name
    return ",".join(scheme.labels)


def scheme_from_labels(labels: Sequence[str]) -> LabelScheme:
    """The scheme of a model's ``id2label`` (labels in id order): the built-in scheme with exactly
    these labels in this order (so composite metrics apply), else a custom one.

    Raises:
        BadLabel: empty or duplicated labels.
    """
    labels = tuple(str(lab) for lab in labels)
    for scheme in BUILTIN.values():
        if scheme.labels == labels:
            return scheme
    return LabelScheme("custom", labels)


def normalise_name(text: str) -> str:
    """A label as the vocabulary compares it: Unicode-normalised, case-folded, spaces, hyphens and
    underscores as one space (``Pleasant_Surprise`` -> ``pleasant surprise``)."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join(text.replace("-", " ").replace("_", " ").split())


def _plain(text: str) -> str:
    """``text`` without accents or umlauts (``ärger`` -> ``arger``, ``felicità`` -> ``felicita``)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, names in _NAMES.items():
        for name in (canonical, *names):
            key = normalise_name(name)
            for k in (key, _plain(key), key.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")):
                if table.setdefault(k, canonical) != canonical:
                    raise ValueError(f"alias {k!r} names both {table[k]} and {canonical}")
    return table


ALIASES: dict[str, str] = _aliases()  # normalised name or code -> canonical name


def canonical_name(label: str) -> str | None:
    """The canonical emotion ``label`` names (``ANG``, ``anger``, ``Wut``, ``gio`` -> ...), or None
    when the vocabulary does not know it. Corpus-only codes (EmoDB letters, RAVDESS numbers) are
    not tried here: see :func:`canonical_names`."""
    key = normalise_name(label)
    return ALIASES.get(key) or ALIASES.get(_plain(key))


def canonical_names(labels: Iterable[str]) -> dict[str, str | None]:
    """Each distinct label -> its canonical emotion name, or None when none is known.

    Names and shared codes come from ``ALIASES``. Labels still unknown are read as one corpus's
    codes (``CORPUS_CODES``: EmoDB's letters, RAVDESS's numbers) only when all of them are codes of
    that one corpus, so a folder corpus named ``W L E A F T N`` lands in canonical names while one
    SAVEE-style ``a`` (anger there, fear in EmoDB) among other names is left unmapped.
    """
    out = {lab: canonical_name(lab) for lab in dict.fromkeys(str(x).strip() for x in labels)}
    unknown = {lab for lab, name in out.items() if name is None}
    if unknown:
        fits = [codes for codes in CORPUS_CODES.values() if unknown <= set(codes)]
        if len(fits) == 1:
            out.update({lab: fits[0][lab] for lab in unknown})
    return out


def map_scheme(scheme: LabelScheme, emotion_map: Mapping[str, str | None]) -> LabelScheme:
    """``scheme`` with each label's emotion renamed through ``emotion_map`` (composite labels keep
    their intensity: ``ANG_HI`` -> ``angry_HI``). Emotions mapped to None leave the scheme; two
    emotions mapped to one name become one class, in the place of the first. The scheme itself
    when nothing changes.

    Raises:
        BadLabel: no label is left.
    """
    labels = []
    for lab in scheme.labels:
        emotion, intensity = scheme.split(lab)
        new = emotion_map.get(emotion, emotion)
        if new is not None:
            labels.append(scheme.join(new, intensity) if scheme.composite else new)
    labels = list(dict.fromkeys(labels))
    if tuple(labels) == scheme.labels:
        return scheme
    if not labels:
        raise BadLabel(f"no label of scheme {scheme.name!r} ({', '.join(scheme.labels)}) is left after the label mapping")
    return LabelScheme("custom", tuple(labels), scheme.composite)
