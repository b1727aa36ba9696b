"""IEMOCAP (Busso et al., 2008), English dyadic sessions, in its release layout:
``SessionN/sentences/wav/DIALOG/UTTERANCE.wav`` with the labels in
``SessionN/dialog/EmoEvaluation/DIALOG.txt``, one summary line per utterance::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

(start - end, utterance id, the evaluators' majority category, valence/activation/dominance).
Each session has one female and one male actor; the utterance id's last part starts with the
speaker's gender, so the speaker is the session number plus that letter (``Ses01F_impro01_F000``
-> ``01F``, ``Ses01F_impro01_M003`` -> ``01M``) and the gender follows from it. Categories land in
canonical names; ``exc`` stays ``excited`` (merge it into ``happy`` with ``--label-map exc=happy``)
and ``xxx`` (no majority) is ``undecided``. The sentence column is left empty (every utterance has
its own words)."""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import BadManifest
from ...labels import canonical_name
from .scan import Scan, audio_files, row

CATEGORIES = ("ang", "hap", "exc", "sad", "neu", "fru", "fea", "sur", "dis", "oth", "xxx")
EMOTION_CODES = {c: canonical_name(c) for c in CATEGORIES}
GENDERS = {"F": "female", "M": "male"}
_LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(\S+)\s+(\S+)\s+\[")
_UTTERANCE = re.compile(r"^Ses(\d\d)[FM]_\S+_([FM])\d+$")


def read_evaluations(root: Path) -> dict[str, tuple[str, Path]]:
    """Utterance id -> (category, the EmoEvaluation file) for every session under ``root``.

    Raises:
        BadManifest: no ``Session*/dialog/EmoEvaluation/*.txt`` under ``root``.
    """
    files = sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt"))
    if not files:
        raise BadManifest(f"{root}: no Session*/dialog/EmoEvaluation/*.txt label files (give the IEMOCAP release "
                          "folder holding Session1 ... Session5)")
    labels: dict[str, tuple[str, Path]] = {}
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m:
                labels[m.group(1)] = (m.group(2), f)
    return labels


def prepare_iemocap(root: Path) -> Scan:
    """Scan an IEMOCAP release folder: one row per labelled utterance with audio."""
    labels = read_evaluations(root)
    scan = Scan()
    seen = set()
    for path in audio_files(root):
        if path.parent.parent.name != "wav" or path.parent.parent.parent.name != "sentences":
            continue  # dialog-level wavs and other audio in the release
        utt = path.stem
        if utt not in labels:
            scan.problems.append((str(path), "no label for this utterance in its session's dialog/EmoEvaluation/*.txt"))
            continue
        seen.add(utt)
        code, source = labels[utt]
        if code not in EMOTION_CODES:
            scan.problems.append((str(path), f"unknown category {code!r} in {source.name} "
                                             f"(valid: {', '.join(CATEGORIES)})"))
            continue
        m = _UTTERANCE.match(utt)
        if not m:
            scan.problems.append((str(path), "utterance id does not match SesNN[FM]_DIALOG_[FM]NNN "
                                             "(e.g. Ses01F_impro01_F000)"))
            continue
        session, letter = m.groups()
        scan.rows.append(row(path, speaker=f"{session}{letter}", emotion=EMOTION_CODES[code], gender=GENDERS[letter]))
    for utt in sorted(set(labels) - seen):
        source = labels[utt][1]  # SessionN/dialog/EmoEvaluation/DIALOG.txt
        expected = source.parents[2] / "sentences" / "wav" / source.stem / f"{utt}.wav"
        scan.problems.append((str(expected), f"labelled in {labels[utt][1].name} but the audio file is missing"))
    return scan
