"""Corpus adapters: the only code that knows a corpus's file names and folder layout.

Each adapter scans a root and returns a :class:`Scan`: one row per utterance (path, speaker,
sentence, emotion, intensity, and ``label`` when the corpus names labels directly) plus the
files it could not interpret, each with a reason. Audio content is checked later, in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..audio import is_audio_file
from ..errors import BadManifest


@dataclass
class Scan:
    """What an adapter found: usable rows and (path, reason) problems."""

    rows: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def audio_files(root: Path) -> Iterator[Path]:
    """Audio files under ``root`` in a stable order; other files (README.txt, ...) are ignored."""
    if not root.is_dir():
        raise BadManifest(f"{root}: not a folder (give the corpus root with --root)")
    yield from sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p))


def row(path: Path, *, speaker: str = "", sentence: str = "", emotion: str = "",
        intensity: str = "", label: str = "", split: str = "") -> dict:
    """One manifest row as an adapter sees it (duration and corpus are filled in later)."""
    return dict(path=str(path.resolve()), speaker=speaker, sentence=sentence, emotion=emotion,
                intensity=intensity, label=label, split=split)


def _adapters() -> dict[str, Callable[[Path], Scan]]:
    from .crema_d import prepare_crema_d
    from .csv_table import prepare_csv
    from .folders import prepare_folders
    from .ravdess import prepare_ravdess

    return {"crema-d": prepare_crema_d, "ravdess": prepare_ravdess, "csv": prepare_csv,
            "folders": prepare_folders}


CORPORA = ("crema-d", "ravdess", "csv", "folders")


def scan_corpus(corpus: str, root: str | Path) -> Scan:
    """Run the adapter for ``corpus`` on ``root``.

    Raises:
        BadManifest: unknown corpus name or unusable root.
    """
    adapters = _adapters()
    if corpus not in adapters:
        raise BadManifest(f"unknown corpus {corpus!r}; valid: {', '.join(CORPORA)}")
    root = Path(root)
    if not root.exists():
        raise BadManifest(f"{root}: corpus root not found")
    return adapters[corpus](root)
