"""What every corpus adapter shares: the scan result and the row it builds."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from ...errors import BadManifest
from ..audio import is_audio_file


@dataclass
class Scan:
    """What an adapter found: usable rows and (path, reason) problems."""

    rows: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def named_files(root: Path, pattern: re.Pattern[str], scan: Scan, expected: str) -> Iterator[tuple[Path, re.Match[str]]]:
    """Audio files under ``root`` whose name (without extension) matches ``pattern``, with the match;
    each other audio file becomes a problem of ``scan`` saying the name does not match ``expected``
    (the convention and an example: the adapters of file-name corpora start here)."""
    for path in audio_files(root):
        m = pattern.match(path.stem)
        if m:
            yield path, m
        else:
            scan.problems.append((str(path), f"file name does not match {expected}"))


def audio_files(root: Path) -> Iterator[Path]:
    """Audio files under ``root`` in a stable order; other files (README.txt, ...) are ignored."""
    if not root.is_dir():
        raise BadManifest(f"{root}: not a folder (give the corpus root with --root)")
    yield from sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p))


def row(path: Path, *, speaker: str = "", sentence: str = "", emotion: str = "",
        intensity: str = "", label: str = "", split: str = "", gender: str = "",
        extra: Mapping[str, str] | None = None) -> dict:
    """One manifest row as an adapter sees it (duration and corpus are filled in later);
    ``gender`` and ``extra`` (age, language, ... as in ``demographics``) become extra manifest
    columns where some row has a value."""
    return dict(path=str(path.resolve()), speaker=speaker, sentence=sentence, emotion=emotion,
                intensity=intensity, label=label, split=split, gender=gender, **(extra or {}))
