"""Speakers read from file paths (``prepare --speaker-pattern``) for corpora that do not name them
(``folders``, a ``csv`` without a speaker column): a regular expression searched in each file's path
relative to the corpus root (``/`` between folders). Its group ``speaker`` (else its first group, else
the whole match) is the speaker; optional groups ``gender`` and ``sentence`` fill those columns. With
speakers, ``prepare`` makes its usual speaker-independent splits instead of random ones.

Examples: ``ROOT/<label>/<speaker>/x.wav``: ``^[^/]+/(?P<speaker>[^/]+)/``; ``Angry/SM1_F10_A010.wav``
(speaker and gender in the name): ``/(?P<speaker>S(?P<gender>[MF])\\d+)_``.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import BadConfig
from .demographics import normalise_group
from .scan import Scan

APPLIES_TO = ("folders", "csv")


def compile_pattern(pattern: str, corpus: str) -> re.Pattern[str]:
    """The compiled pattern.

    Raises:
        BadConfig: not a regular expression, or a corpus that names its own speakers."""
    if corpus not in APPLIES_TO:
        raise BadConfig(f"--speaker-pattern applies to --corpus {' or '.join(APPLIES_TO)}; {corpus} names its "
                        "speakers itself" + (" (use --hf-speaker)" if corpus == "hf" else ""))
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadConfig(f"--speaker-pattern {pattern!r}: not a regular expression ({exc})") from None


def relative_path(path: str, root: Path) -> str:
    """``path`` relative to the corpus root (a CSV file's folder), with ``/``; the whole path when
    it lies outside."""
    base = root.resolve()
    base = base.parent if base.is_file() else base
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return Path(path).as_posix()


def apply_speaker_pattern(scan: Scan, pattern: re.Pattern[str], root: Path) -> None:
    """Fill each row's speaker (and gender / sentence, where the pattern names them) from its path;
    a row whose path does not match, or whose speaker comes out empty, becomes a problem.

    Raises:
        BadConfig: the corpus already has speakers (a CSV with a speaker column)."""
    named = pattern.groupindex
    kept = []
    for r in scan.rows:
        if r.get("speaker"):
            raise BadConfig(f"--speaker-pattern: {root} already names its speakers (speaker column, e.g. "
                            f"{r['speaker']!r}); drop the option or the column")
        rel = relative_path(r["path"], root)
        m = pattern.search(rel)
        speaker = "" if m is None else (m.group("speaker") if "speaker" in named else
                                        m.group(1) if pattern.groups else m.group(0)) or ""
        if not speaker:
            why = "does not match" if m is None else "matches with an empty speaker in"
            scan.problems.append((r["path"], f"path {rel!r} {why} --speaker-pattern {pattern.pattern!r}"))
            continue
        r["speaker"] = speaker
        if "gender" in named and m.group("gender"):
            r["gender"] = normalise_group("gender", m.group("gender"))
        if "sentence" in named and m.group("sentence"):
            r["sentence"] = m.group("sentence")
        kept.append(r)
    scan.rows = kept
    scan.notes.append(f"speakers from file paths (--speaker-pattern {pattern.pattern!r}): "
                      f"{len({r['speaker'] for r in kept})} speakers")
