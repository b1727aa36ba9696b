"""The manifest: one row per utterance, the pivot between corpora and everything after ``prepare``.

Columns are fixed (``COLUMNS``); paths are absolute when written by ``prepare`` and resolved
relative to the manifest file when a user edits them in by hand.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pandas as pd

from .audio import scan_audio
from ..errors import BadAudio, BadLabel, BadManifest
from ..labels import LabelScheme

COLUMNS = ("path", "speaker", "sentence", "emotion", "intensity", "label", "duration", "split", "corpus")
SPLITS = ("train", "validation", "test")
MANIFEST_NAME = "manifest.csv"


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; it replaces ``path`` (``os.replace``, atomic on one
    file system) only when the block finishes, so a reader or a crash never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def extra_columns(df: pd.DataFrame) -> list[str]:
    """Columns beyond ``COLUMNS`` that hold a value in some row (gender, age, language, ...)."""
    return [c for c in df.columns if c not in COLUMNS
            and df[c].fillna("").astype(str).str.strip().ne("").any()]


def save_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the manifest CSV with the fixed column order, then any extra column that holds a
    value (speaker groups such as gender), atomically (see :func:`replacing`)."""
    path = Path(path)
    with replacing(path) as tmp:
        df.loc[:, [*COLUMNS, *extra_columns(df)]].to_csv(tmp, index=False, float_format="%.4f")
    return path


def load_manifest(path: str | Path, *, split: str | None = None) -> pd.DataFrame:
    """Read a manifest (a file, or a folder holding ``manifest.csv``), optionally one split.

    Raises:
        BadManifest: missing file, missing columns, unknown split, or an empty selection.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise BadManifest(f"{path}: manifest not found (create one with `emovox prepare`)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        raise BadManifest(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df["duration"] = pd.to_numeric(df["duration"], errors="coerce").fillna(0.0)
    base = path.parent.resolve()
    df["path"] = [p if os.path.isabs(p) else str(base / p) for p in df["path"]]
    if split is not None:
        if split not in SPLITS:
            raise BadManifest(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        df = df[df["split"] == split].reset_index(drop=True)
        if df.empty:
            raise BadManifest(f"{path}: no rows in split {split!r}")
    return df


def scheme_file(manifest: str | Path) -> Path:
    """Where ``prepare`` records the label scheme it decided, beside the manifest
    (``manifest.csv`` -> ``manifest.scheme.json``)."""
    path = Path(manifest)
    path = path / MANIFEST_NAME if path.is_dir() else path
    return path.with_suffix(".scheme.json")


def save_manifest_scheme(manifest: str | Path, scheme: LabelScheme) -> Path:
    """Record ``scheme`` with the manifest, so training uses the labels prepare decided on."""
    import json

    path = scheme_file(manifest)
    with replacing(path) as tmp:
        tmp.write_text(json.dumps({"scheme": scheme.to_dict()}, indent=2) + "\n")
    return path


def manifest_scheme(manifest: str | Path) -> LabelScheme | None:
    """The scheme recorded with a manifest by ``prepare`` (None for a manifest made elsewhere).

    Raises:
        BadManifest: the record exists but is not a valid scheme.
    """
    import json

    path = scheme_file(manifest)
    if not path.is_file():
        return None
    try:
        return LabelScheme.from_dict(json.loads(path.read_text())["scheme"])
    except (ValueError, KeyError, TypeError, BadLabel) as exc:
        raise BadManifest(f"{path}: not a valid scheme record ({exc}); delete it or re-run `emovox prepare`") from None


def manifest_fingerprint(df: pd.DataFrame) -> str:
    """A short hash of the rows that matter for training (paths, labels, splits)."""
    h = hashlib.sha256()
    for rec in df.loc[:, ["path", "label", "split"]].itertuples(index=False):
        h.update("\t".join(rec).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def inspect_file(path: str) -> tuple[float, str]:
    """Open and check one file in bounded memory; return (duration in seconds, content digest).

    Raises:
        BadAudio: missing, empty, unreadable, outside the audio limits, too short, NaN/inf,
            digital silence.
    """
    scan = scan_audio(path)
    return scan.duration, scan.digest


def _inspect_safe(path: str) -> tuple[float, str, str]:
    try:
        duration, digest = inspect_file(path)
        return duration, digest, ""
    except BadAudio as exc:
        return 0.0, "", _reason(str(exc), path)
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one hostile file must not stop the batch
        return 0.0, "", f"decoding failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"


def _reason(message: str, path: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def inspect_files(paths: Sequence[str], *, workers: int | None = None,
                  progress: bool = False) -> list[tuple[float, str, str]]:
    """Check many files in parallel: (duration, digest, error reason or "") per path, in order."""
    workers = workers or os.cpu_count() or 1
    it: Iterable
    if workers <= 1 or len(paths) < 64:
        it = map(_inspect_safe, paths)
        return list(_progress(it, len(paths), progress))
    chunk = max(16, len(paths) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(_progress(pool.map(_inspect_safe, paths, chunksize=chunk), len(paths), progress))


def _progress(it: Iterable, total: int, enabled: bool) -> Iterable:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="checking audio", unit="file", mininterval=0.5)


def duplicates(paths: Sequence[str], digests: Sequence[str], labels: Sequence[str]) -> tuple[list[tuple[int, str]], list[str]]:
    """Find repeated rows: the same file listed twice, or the same audio under another name.

    A repeated path, or identical audio with a different label, is a problem (row index, reason).
    Identical audio with the same label is only a warning: real corpora ship such copies
    (RAVDESS has one) and dropping either would change the corpus.
    """
    first_path: dict[str, int] = {}
    first_digest: dict[str, int] = {}
    problems, warnings = [], []
    for i, (p, d) in enumerate(zip(paths, digests)):
        if p in first_path:
            problems.append((i, "duplicate: the same file is listed twice"))
            continue
        first_path[p] = i
        if not d:
            continue
        j = first_digest.setdefault(d, i)
        if j == i:
            continue
        if labels[j] != labels[i]:
            problems.append((i, f"duplicate: same audio as {paths[j]} but labelled {labels[i]!r} there {labels[j]!r}"))
        else:
            warnings.append(f"identical audio, same label ({labels[i]}): {paths[j]} and {p}")
    return problems, warnings


def require_columns_filled(df: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Raises BadManifest when a needed column is empty in some rows."""
    for col in columns:
        empty = df[col].astype(str).str.strip() == ""
        if empty.any():
            raise BadManifest(f"{where}: column {col!r} is empty in {int(empty.sum())} row(s), "
                              f"e.g. {df.loc[empty, 'path'].iloc[0]}")
