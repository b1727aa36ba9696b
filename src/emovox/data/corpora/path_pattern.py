"""What a corpus's file paths say (``prepare --path-pattern``), for corpora whose adapter cannot
know it: ``folders`` (no speakers; labels only from the top folder) and a ``csv`` without a speaker
column. A regular expression is searched in each file's path relative to the corpus root (``/``
between folders); its named groups fill manifest columns:

- ``speaker`` (with no named group at all, the first group, else the whole match, is the speaker);
- ``label`` (``folders`` only: instead of the top folder's name, so files may lie anywhere);
- ``gender`` (f/F/female/w..., m/M/male: spelled as manifests spell it), ``sentence``, ``intensity``.

With speakers, ``prepare`` makes its usual speaker-independent splits instead of random ones. A file
the pattern does not match, or whose speaker or label comes out empty, is an invalid file.

Examples: ``ROOT/<label>/<speaker>/x.wav``: ``^[^/]+/(?P<speaker>[^/]+)/``; speaker and gender in
the name (``Angry/SM1_F10_A010.wav``): ``/(?P<speaker>S(?P<gender>[MF])\\d+)_``; speaker and label in a
folder name (``OAF_angry/OAF_back_angry.wav``): ``^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)/``.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import BadConfig
from .demographics import normalise_group
from .scan import Scan

APPLIES_TO = ("folders", "csv")
GROUPS = ("speaker", "label", "gender", "sentence", "intensity")


def compile_pattern(pattern: str, corpus: str) -> re.Pattern[str]:
    """The compiled pattern.

    Raises:
        BadConfig: not a regular expression, a named group emovox does not fill, a ``label`` group
            for a CSV (its labels are its label column), or a corpus whose adapter reads its names."""
    if corpus not in APPLIES_TO:
        raise BadConfig(f"--path-pattern applies to --corpus {' or '.join(APPLIES_TO)}; {corpus} reads its file "
                        "names itself" + (" (use --hf-speaker and --hf-label)" if corpus == "hf" else ""))
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise BadConfig(f"--path-pattern {pattern!r}: not a regular expression ({exc})") from None
    unknown = [g for g in compiled.groupindex if g not in GROUPS]
    if unknown:
        raise BadConfig(f"--path-pattern: unknown group {unknown[0]!r}; named groups fill {', '.join(GROUPS)}")
    if corpus == "csv" and "label" in compiled.groupindex:
        raise BadConfig("--path-pattern: a csv corpus takes its labels from its label column; drop the label group")
    return compiled


def relative_path(path: str, root: Path) -> str:
    """``path`` relative to the corpus root (a CSV file's folder), with ``/``; the whole path when
    it lies outside."""
    base = root.resolve()
    base = base.parent if base.is_file() else base
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _speaker(m: re.Match[str], pattern: re.Pattern[str]) -> str | None:
    """The speaker the match names ('' when its group took no part), or None when the pattern names
    none (named groups, none of them the speaker: speakers stay as they were)."""
    if "speaker" in pattern.groupindex:
        return m.group("speaker") or ""
    if pattern.groupindex:
        return None
    return (m.group(1) if pattern.groups else m.group(0)) or ""


def apply_path_pattern(scan: Scan, pattern: re.Pattern[str], root: Path) -> None:
    """Fill each row's columns from its path (rows keep what the pattern does not name); a row whose
    path does not match, or that is left without a label or with an empty speaker, becomes a problem.

    Raises:
        BadConfig: the pattern names speakers and the corpus already has them (a CSV's speaker column)."""
    named, kept = pattern.groupindex, []
    for r in scan.rows:
        rel = relative_path(r["path"], root)
        m = pattern.search(rel)
        if m is None:
            scan.problems.append((r["path"], f"path {rel!r} does not match --path-pattern {pattern.pattern!r}"))
            continue
        speaker = _speaker(m, pattern)
        if speaker is not None and r.get("speaker"):
            raise BadConfig(f"--path-pattern: {root} already names its speakers (speaker column, e.g. "
                            f"{r['speaker']!r}); drop the speaker group or the column")
        values = {g: m.group(g) or "" for g in named if g != "speaker"}
        if "gender" in values:
            values["gender"] = normalise_group("gender", values["gender"])
        r.update({k: v for k, v in values.items() if v})
        if speaker is not None:
            r["speaker"] = speaker
        missing = "speaker" if speaker == "" else "" if r.get("label") or r.get("emotion") else "label"
        if missing:
            scan.problems.append((r["path"], f"path {rel!r}: --path-pattern {pattern.pattern!r} gives no {missing}"))
            continue
        kept.append(r)
    scan.rows = kept
    if any(r.get("speaker") for r in kept):
        scan.notes.append(f"speakers from file paths (--path-pattern {pattern.pattern!r}): "
                          f"{len({r['speaker'] for r in kept})} speakers")
