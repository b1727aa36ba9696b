"""``prepare``'s label mapping: a corpus's labels renamed into the names a model will use.

Three levers, applied to each row's emotion (the emotion part of a composite label: ``ANG_HI``
maps as ``ANG`` and keeps ``_HI``):

- ``label_map``: explicit renames (``gio=happy,rab=angry`` or a two-column CSV ``from,to``). A key
  matches a label spelled another way (case, accents) or another name of the same emotion
  (``exc=happy`` also renames ``excited``).
- ``canonical``: every label the map does not rename goes through the emotion vocabulary
  (:func:`emovox.labels.canonical_names`); map targets do too (``exc=hap`` -> ``happy``).
- ``unmapped``: what happens to a label with no canonical name (with ``canonical``), or whose name
  is outside a scheme the user gave: ``error`` refuses in one line naming each with its clip count,
  ``drop`` drops those rows (listed in the data report).
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import BadConfig, BadLabel
from ..labels import (KNOWN_INTENSITIES, SEP, LabelScheme, canonical_name, canonical_names, map_scheme,
                      normalise_name)

UNMAPPED_CHOICES = ("error", "drop")


@dataclass
class Mapped:
    """Rows after mapping and what happened: (from, to) -> clips, and dropped label -> clips."""

    rows: list[dict]
    renamed: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        """The mapping as the data report records it."""
        return {"renamed": [{"from": a, "to": b, "clips": n} for (a, b), n in sorted(self.renamed.items())],
                "dropped": dict(sorted(self.dropped.items()))}


def parse_label_map(spec: str | Path | Mapping[str, str] | None) -> dict[str, str]:
    """``FROM=TO,...``, a CSV file of two columns (from, to; a ``from,to`` header is optional), or a
    dict, as one dict.

    Raises:
        BadConfig: a malformed pair, an unreadable or ill-shaped file, an empty side, or a label
            given two different targets (each names the offending text).
    """
    if spec is None or spec == "":
        return {}
    if isinstance(spec, Mapping):
        pairs = [(str(k), str(v), "--label-map") for k, v in spec.items()]
    elif isinstance(spec, str) and "=" in spec:
        pairs = [(*_pair(item), "--label-map") for item in spec.split(",") if item.strip()]
    else:
        pairs = _read_pairs(Path(spec))
    out: dict[str, str] = {}
    for src, dst, where in pairs:
        src, dst = src.strip(), dst.strip()
        if not src or not dst:
            raise BadConfig(f"{where}: {src or '(empty)'}={dst or '(empty)'} needs a label on both sides")
        if out.setdefault(src, dst) != dst:
            raise BadConfig(f"{where}: {src!r} is mapped to both {out[src]!r} and {dst!r}")
    return out


def _pair(item: str) -> tuple[str, str]:
    src, eq, dst = item.partition("=")
    if not eq:
        raise BadConfig(f"--label-map: {item.strip()!r} is not FROM=TO (e.g. gio=happy,rab=angry, or a CSV file)")
    return src, dst


def _read_pairs(path: Path) -> list[tuple[str, str, str]]:
    if not path.is_file():
        raise BadConfig(f"--label-map {path}: neither FROM=TO pairs (e.g. gio=happy,rab=angry) nor a CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            lines = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadConfig(f"--label-map {path}: not a readable CSV ({exc})") from None
    if lines and [c.strip().lower() for c in lines[0]] == ["from", "to"]:
        lines = lines[1:]
    pairs = []
    for n, r in enumerate(lines, start=1):
        if len(r) != 2:
            raise BadConfig(f"--label-map {path}: row {n} has {len(r)} column(s); expected two (from, to): {r}")
        pairs.append((r[0], r[1], f"--label-map {path}"))
    return pairs


def map_rows(rows: list[dict], *, label_map: Mapping[str, str], canonical: bool, unmapped: str,
             scheme: LabelScheme | None = None, where: str = "") -> Mapped:
    """Rename each row's emotion (its ``label``, or ``emotion`` when the adapter gave codes).

    Args:
        rows: Adapter rows (``label`` set, or ``emotion``/``intensity``).
        label_map: Explicit renames (see :func:`parse_label_map`).
        canonical: Map the rest through the emotion vocabulary.
        unmapped: ``error`` or ``drop`` (see the module docstring).
        scheme: The scheme the user named, if any: names outside it count as unmapped.
        where: The corpus root, for the error message.

    Raises:
        BadConfig: ``unmapped`` is not error or drop.
        BadLabel: some labels are unmapped and ``unmapped`` is ``error`` (all named with counts).
    """
    if unmapped not in UNMAPPED_CHOICES:
        raise BadConfig(f"--unmapped {unmapped!r}; valid: {', '.join(UNMAPPED_CHOICES)}")
    parts = [_emotion_part(r) for r in rows]
    names = resolve_names(dict.fromkeys(p[0] for p in parts), label_map=label_map, canonical=canonical)
    allowed = set(scheme.emotions) if scheme is not None else None
    out = Mapped(rows=[])
    renamed: Counter = Counter()
    unknown: Counter = Counter()
    outside: Counter = Counter()
    for r, (emotion, intensity, field_) in zip(rows, parts):
        new = names[emotion]
        if new is None:
            unknown[_shown(r)] += 1
            continue
        if allowed is not None and new not in allowed:
            outside[_shown(r) if new == emotion else f"{_shown(r)} (as {new})"] += 1
            continue
        if new != emotion:
            renamed[(emotion, new)] += 1
        out.rows.append({**r, field_: new if intensity is None else f"{new}{SEP}{intensity}"})
    if (unknown or outside) and unmapped == "error":
        raise BadLabel(_unmapped_message(unknown, outside, where, scheme))
    out.renamed, out.dropped = dict(renamed), {**unknown, **outside}
    return out


def rename_scheme(scheme: LabelScheme, *, label_map: Mapping[str, str], canonical: bool,
                  keep_unknown: bool) -> LabelScheme:
    """``scheme`` renamed as :func:`map_rows` renames rows (crema-d-21's ``ANG_HI`` -> ``angry_HI``).
    ``keep_unknown``: names the vocabulary does not know stay (a scheme the user wrote is already
    in the target names); else they leave the scheme, as their rows would.

    Raises:
        BadLabel: no label is left.
    """
    names = resolve_names(scheme.emotions, label_map=label_map, canonical=canonical)
    return map_scheme(scheme, {e: n or e for e, n in names.items()} if keep_unknown else names)


def _emotion_part(r: dict) -> tuple[str, str | None, str]:
    """(emotion, intensity or None, the field it came from): a composite label (``ANG_HI``,
    ``angry_strong``: an intensity emovox knows after the last ``_``) maps its emotion part."""
    if not r.get("label"):
        return str(r.get("emotion", "")).strip(), None, "emotion"
    label = str(r["label"]).strip()
    emotion, sep, intensity = label.rpartition(SEP)
    if sep and emotion and intensity in KNOWN_INTENSITIES:
        return emotion, intensity, "label"
    return label, None, "label"


def resolve_names(emotions: Iterable[str], *, label_map: Mapping[str, str], canonical: bool) -> dict[str, str | None]:
    """Each distinct emotion -> its new name (None: no canonical name, with ``canonical``)."""
    emotions = list(dict.fromkeys(emotions))
    keys = {normalise_name(k): v for k, v in label_map.items()}
    by_meaning = {canonical_name(k): v for k, v in label_map.items() if canonical_name(k)}
    vocab = canonical_names(emotions) if canonical else {}
    targets = canonical_names(label_map.values()) if canonical else {}
    out: dict[str, str | None] = {}
    for e in emotions:
        target = keys.get(normalise_name(e)) or by_meaning.get(canonical_name(e) or "")
        if target is not None:
            out[e] = (targets.get(target) or target) if canonical else target
        else:
            out[e] = vocab.get(e) if canonical else e
    return out


def _shown(r: dict) -> str:
    return str(r.get("label") or r.get("emotion") or "").strip()


def _unmapped_message(unknown: Counter, outside: Counter, where: str, scheme: LabelScheme | None) -> str:
    def listed(c: Counter) -> str:
        return ", ".join(f"{lab or '(empty)'} ({n})" for lab, n in sorted(c.items()))

    groups = [f"no canonical emotion name: {listed(unknown)}" if unknown else "",
              f"outside scheme {scheme.name!r} ({', '.join(scheme.labels)}): {listed(outside)}" if outside and scheme else ""]
    n = sum(unknown.values()) + sum(outside.values())
    return (f"{where + ': ' if where else ''}{n} clip(s) with unmapped labels, {'; '.join(g for g in groups if g)}; "
            "map them with --label-map FROM=TO (or a CSV file), or drop them with --unmapped drop")
