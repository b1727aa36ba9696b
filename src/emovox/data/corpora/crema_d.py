"""CREMA-D: flat folder of ``ACTOR_SENTENCE_EMOTION_INTENSITY.wav`` (e.g. ``1001_DFA_ANG_XX.wav``).
Gender, age, race and ethnicity come from the release's ``VideoDemographics.csv`` when it is in the
root or the folder above it."""
from __future__ import annotations

import re
from pathlib import Path

from ...labels import CREMA_EMOTIONS, CREMA_INTENSITIES
from .demographics import crema_demographics
from .scan import Scan, audio_files, row

_NAME = re.compile(r"^(\d+)_([A-Za-z]{3})_([A-Za-z]+)_([A-Za-z]+)$")


def prepare_crema_d(root: Path) -> Scan:
    """Scan a CREMA-D folder (searched recursively)."""
    scan = Scan()
    people = crema_demographics(root)
    for path in audio_files(root):
        m = _NAME.match(path.stem)
        if not m:
            scan.problems.append((str(path), "file name does not match ACTOR_SENTENCE_EMOTION_INTENSITY "
                                             "(e.g. 1001_DFA_ANG_XX.wav)"))
            continue
        actor, sentence, emotion, intensity = m.groups()
        if emotion not in CREMA_EMOTIONS:
            scan.problems.append((str(path), f"unknown emotion code {emotion!r} "
                                             f"(valid: {', '.join(CREMA_EMOTIONS)})"))
            continue
        if intensity not in CREMA_INTENSITIES:
            scan.problems.append((str(path), f"unknown intensity code {intensity!r} "
                                             f"(valid: {', '.join(CREMA_INTENSITIES)})"))
            continue
        groups = dict(people.get(actor, {}))
        scan.rows.append(row(path, speaker=actor, sentence=sentence, emotion=emotion, intensity=intensity,
                             gender=groups.pop("gender", ""), extra=groups))
    if people:
        scan.notes.append(f"speaker groups (gender, age, ...) from {len(people)} actors of VideoDemographics.csv")
    return scan
