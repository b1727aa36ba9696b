"""A CSV table (``path,label`` plus optional ``speaker``, ``split``, ``sentence``), or a folder holding
``train.csv``, ``validation.csv`` and ``test.csv`` as the reference recipe had. Paths are relative
to the CSV file. Speaker-group columns (gender/sex, age, language, accent, race, ethnicity) are
passed through to the manifest."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...errors import BadManifest
from .demographics import group_columns, normalise_group
from .scan import Scan, row

PATH_COLUMNS = ("path", "file", "filename", "filepath", "audio", "wav")
LABEL_COLUMNS = ("label", "emotion", "labels", "class")
SPLIT_FILES = {"train": "train.csv", "validation": "validation.csv", "test": "test.csv"}
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test", "eval": "test"}


def prepare_csv(root: Path) -> Scan:
    """Read one CSV (its optional ``split`` column kept) or a folder of split CSVs.

    Raises:
        BadManifest: missing columns, unknown split names, or a folder without the split files.
    """
    if root.is_dir():
        missing = [f for f in SPLIT_FILES.values() if not (root / f).exists()]
        if missing:
            raise BadManifest(f"{root}: a CSV folder needs {', '.join(SPLIT_FILES.values())}; "
                              f"missing {', '.join(missing)} (or pass one CSV file)")
        scan = Scan()
        for split, name in SPLIT_FILES.items():
            part = _read_table(root / name, forced_split=split)
            scan.rows += part.rows
            scan.problems += part.problems
        return scan
    return _read_table(root)


def _pick(columns: list[str], wanted: tuple[str, ...], what: str, csv: Path) -> str:
    lower = {c.lower().strip(): c for c in columns}
    for w in wanted:
        if w in lower:
            return lower[w]
    raise BadManifest(f"{csv}: no {what} column; expected one of {', '.join(wanted)} (found {', '.join(columns)})")


def _read_table(csv: Path, forced_split: str = "") -> Scan:
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise BadManifest(f"{csv}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    cols = list(table.columns)
    path_col = _pick(cols, PATH_COLUMNS, "path", csv)
    label_col = _pick(cols, LABEL_COLUMNS, "label", csv)
    lower = {c.lower(): c for c in cols}
    groups = group_columns([c for c in cols if c not in (path_col, label_col)])
    scan = Scan()
    for i, rec in enumerate(table.to_dict("records"), start=2):
        raw = rec[path_col].strip()
        if not raw:
            scan.problems.append((f"{csv}:{i}", "empty path"))
            continue
        path = Path(raw) if Path(raw).is_absolute() else csv.parent / raw
        split = forced_split or rec.get(lower.get("split", ""), "").strip().lower()
        if split and split not in SPLIT_ALIASES:
            raise BadManifest(f"{csv}:{i}: unknown split {split!r}; valid: train, validation, test")
        label = rec[label_col].strip()
        if not label:
            scan.problems.append((str(path), f"empty label ({csv}:{i})"))
            continue
        scan.rows.append(row(path, label=label, split=SPLIT_ALIASES.get(split, ""),
                             speaker=rec.get(lower.get("speaker", ""), "").strip(),
                             sentence=rec.get(lower.get("sentence", ""), "").strip(),
                             **_groups(rec, groups)))
    return scan


def _groups(rec: dict, groups: dict[str, str]) -> dict:
    values = {name: normalise_group(name, rec[col]) for name, col in groups.items()}
    return {"gender": values.pop("gender", ""), "extra": values}
