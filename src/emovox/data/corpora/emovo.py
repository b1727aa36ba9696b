"""EMOVO (Costantini et al., LREC 2014), Italian: ``SPEAKER/EMO-SPEAKER-SENTENCE.wav``, e.g.
``f1/dis-f1-b1.wav``. Six actors (f1-f3 female, m1-m3 male), seven emotions, fourteen sentences
(b1-b3, d1-d2, l1-l4, n1-n5). Emotions land in canonical names; gender comes from the speaker's
f/m prefix, as the corpus documents it."""
from __future__ import annotations

import re
from pathlib import Path

from ...labels import canonical_name
from .scan import Scan, named_files, row

# EMOVO's Italian codes (disgusto, gioia, neutro, paura, rabbia, sorpresa, tristezza) -> canonical
# names, through the vocabulary: dis disgust, gio happy, neu neutral, pau fearful, rab angry,
# sor surprised, tri sad
CODES = ("dis", "gio", "neu", "pau", "rab", "sor", "tri")
EMOTION_CODES = {c: canonical_name(c) for c in CODES}
GENDERS = {"f": "female", "m": "male"}
_NAME = re.compile(r"^([a-z]+)-([fm]\d+)-([a-z]\d+)$", re.IGNORECASE)


def prepare_emovo(root: Path) -> Scan:
    """Scan an EMOVO tree (searched recursively; the speaker folder is not needed, the file name
    carries everything)."""
    scan = Scan()
    for path, m in named_files(root, _NAME, scan, "EMO-SPEAKER-SENTENCE (e.g. dis-f1-b1.wav)"):
        emo, speaker, sentence = (g.lower() for g in m.groups())
        if emo not in EMOTION_CODES:
            scan.problems.append((str(path), f"unknown emotion code {emo!r} (valid: {', '.join(EMOTION_CODES)})"))
            continue
        scan.rows.append(row(path, speaker=speaker, sentence=sentence, emotion=EMOTION_CODES[emo],
                             gender=GENDERS[speaker[0]]))
    return scan
