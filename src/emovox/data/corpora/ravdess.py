"""RAVDESS: ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav`` (modality, vocal channel, emotion, intensity,
statement, repetition, actor). Only audio-only (03) speech (01) files are used. Gender comes from
the actor number (odd male, even female, as the corpus documents)."""
from __future__ import annotations

import re
from pathlib import Path

from ...labels import RAVDESS_EMOTIONS, RAVDESS_INTENSITIES
from .demographics import ravdess_gender
from .scan import Scan, audio_files, row

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
EMOTION_CODES = {f"{i:02d}": name for i, name in enumerate(RAVDESS_EMOTIONS, start=1)}
INTENSITY_CODES = {"01": RAVDESS_INTENSITIES[0], "02": RAVDESS_INTENSITIES[1]}
STATEMENTS = {"01": "kids", "02": "dogs"}


def prepare_ravdess(root: Path) -> Scan:
    """Scan a RAVDESS tree; song and video files are skipped and counted in a note."""
    scan = Scan()
    skipped = 0
    for path in audio_files(root):
        m = _NAME.match(path.stem)
        if not m:
            scan.problems.append((str(path), "file name does not match MM-VV-EE-II-SS-RR-AA "
                                             "(e.g. 03-01-05-02-01-01-12.wav)"))
            continue
        modality, channel, emo, inten, statement, _rep, actor = m.groups()
        if modality != "03" or channel != "01":
            skipped += 1
            continue
        reason = _code_problem(emo, inten, statement)
        if reason:
            scan.problems.append((str(path), reason))
            continue
        scan.rows.append(row(path, speaker=actor, sentence=STATEMENTS[statement],
                             emotion=EMOTION_CODES[emo], intensity=INTENSITY_CODES[inten],
                             gender=ravdess_gender(actor)))
    if skipped:
        scan.notes.append(f"skipped {skipped} song or video file(s): only audio-only speech is used")
    return scan


def _code_problem(emo: str, inten: str, statement: str) -> str:
    if emo not in EMOTION_CODES:
        return f"unknown emotion code {emo!r} (valid: 01-08)"
    if inten not in INTENSITY_CODES:
        return f"unknown intensity code {inten!r} (valid: 01 normal, 02 strong)"
    if emo == "01" and inten == "02":
        return "neutral has no strong intensity in RAVDESS (intensity code 02 with emotion 01)"
    if statement not in STATEMENTS:
        return f"unknown statement code {statement!r} (valid: 01, 02)"
    return ""
