"""Label schemes: the one place that knows label names, their ids and composite structure.

A composite scheme (e.g. CREMA-D emotion x intensity) has labels ``EMOTION_INTENSITY`` that split
into ``(emotion, intensity)`` and join back. Flat schemes have one label per emotion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .errors import BadLabel

SEP = "_"
UNKNOWN_INTENSITY = {"XX", "unknown", ""}

CREMA_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_INTENSITIES = ("HI", "LO", "MD", "XX")
RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
RAVDESS_INTENSITIES = ("normal", "strong")


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


BUILTIN: dict[str, LabelScheme] = {
    s.name: s
    for s in (
        _crema21(),
        LabelScheme("crema-d-6", CREMA_EMOTIONS),
        LabelScheme("ravdess-8", RAVDESS_EMOTIONS),
        _ravdess15(),
    )
}

DEFAULT_FOR_CORPUS = {"crema-d": "crema-d-21", "ravdess": "ravdess-8"}


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
    composite = any(s.composite and set(spec) <= set(s.labels) for s in BUILTIN.values())
    return LabelScheme("custom", tuple(spec), composite)


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
