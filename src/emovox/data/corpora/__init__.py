"""Corpus adapters: the only code that knows a corpus's file names and folder layout.

Each adapter scans a root and returns a :class:`Scan`: one row per utterance (path, speaker,
sentence, emotion, intensity, and ``label`` when the corpus names labels directly) plus the
files it could not interpret, each with a reason. Audio content is checked later, in one place.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...errors import BadManifest
from .crema_d import prepare_crema_d
from .csv_table import prepare_csv
from .folders import prepare_folders
from .ravdess import prepare_ravdess
from .scan import Scan, audio_files, row

__all__ = ["CORPORA", "Scan", "audio_files", "row", "scan_corpus"]


def _adapters() -> dict[str, Callable[[Path], Scan]]:
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
