"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005), German:
``wav/SSTTTEV.wav``, e.g. ``03a01Fa.wav``: speaker (2 digits), text code (3 characters: a01-a07,
b01-b10), emotion letter (the German name's initial), version letter (a, b, ...). Emotions land in
canonical names; gender comes from the speaker list the corpus documents."""
from __future__ import annotations

import re
from pathlib import Path

from ...labels import CORPUS_CODES
from .scan import Scan, named_files, row

# W Wut/Ärger (anger), L Langeweile (boredom), E Ekel (disgust), A Angst (fear), F Freude
# (happiness), T Trauer (sadness), N neutral
EMOTION_CODES = CORPUS_CODES["emodb"]
# the ten actors as the corpus documents them
SPEAKER_GENDERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
                   "13": "female", "14": "female", "15": "male", "16": "female"}
_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])$")


def prepare_emodb(root: Path) -> Scan:
    """Scan an EmoDB folder (searched recursively: the release keeps the clips in ``wav/``)."""
    scan = Scan()
    for path, m in named_files(root, _NAME, scan, "SSTTTEV: speaker, text, emotion, version (e.g. 03a01Fa.wav)"):
        speaker, text, emo, _version = m.groups()
        if emo not in EMOTION_CODES:
            scan.problems.append((str(path), f"unknown emotion letter {emo!r} (valid: {' '.join(EMOTION_CODES)})"))
            continue
        scan.rows.append(row(path, speaker=speaker, sentence=text, emotion=EMOTION_CODES[emo],
                             gender=SPEAKER_GENDERS.get(speaker, "")))
    unknown = sorted({r["speaker"] for r in scan.rows} - set(SPEAKER_GENDERS))
    if unknown:
        scan.notes.append(f"speaker(s) {', '.join(unknown)} are not among EmoDB's ten documented actors "
                          f"({', '.join(SPEAKER_GENDERS)}): their gender is left empty")
    return scan
