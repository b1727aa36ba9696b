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
from .emodb import prepare_emodb
from .emovo import prepare_emovo
from .folders import prepare_folders
from .hf import HFOptions, hub_ids_of, parse_split_map, prepare_hf
from .iemocap import prepare_iemocap
from .ravdess import prepare_ravdess
from .scan import Scan, audio_files, row
from .path_pattern import apply_path_pattern, compile_pattern

__all__ = ["CORPORA", "HFOptions", "Scan", "audio_files", "hub_ids_of", "parse_split_map", "row", "scan_corpus"]


def _adapters() -> dict[str, Callable[[Path], Scan]]:
    return {"crema-d": prepare_crema_d, "ravdess": prepare_ravdess, "emovo": prepare_emovo, "emodb": prepare_emodb,
            "iemocap": prepare_iemocap, "csv": prepare_csv, "folders": prepare_folders}


CORPORA = ("crema-d", "ravdess", "emovo", "emodb", "iemocap", "csv", "folders", "hf")


def scan_corpus(corpus: str, root: str | Path, *, audio_dir: str | Path | None = None,
                hf: HFOptions | None = None, progress: bool = False, path_pattern: str | None = None) -> Scan:
    """Run the adapter for ``corpus`` on ``root``. ``hf`` (columns and splits) and ``audio_dir``
    (where its clips are written as FLAC) are for ``corpus="hf"``; ``path_pattern`` (a regular
    expression over each file's path under ``root``: the module ``path_pattern``) for ``folders`` and ``csv``.

    Raises:
        BadManifest: unknown corpus name, unusable root, or ``hf`` options with another corpus.
        BadConfig: an invalid ``path_pattern``, or one for a corpus whose adapter reads its names.
    """
    if corpus not in CORPORA:
        raise BadManifest(f"unknown corpus {corpus!r}; valid: {', '.join(CORPORA)}")
    pattern = compile_pattern(path_pattern, corpus) if path_pattern else None
    root = Path(root)
    if not root.exists():
        raise BadManifest(f"{root}: corpus root not found")
    if corpus == "hf":
        if audio_dir is None:
            raise BadManifest("--corpus hf needs an output folder for its audio")
        return prepare_hf(root, audio_dir=Path(audio_dir), options=hf or HFOptions(), progress=progress)
    if hf is not None and hf.given():
        raise BadManifest(f"--hf-label, --hf-speaker and --hf-split apply to --corpus hf, not {corpus}")
    if pattern is not None:
        scan = prepare_folders(root, loose=True) if corpus == "folders" else _adapters()[corpus](root)
        apply_path_pattern(scan, pattern, root)
        return scan
    return _adapters()[corpus](root)
