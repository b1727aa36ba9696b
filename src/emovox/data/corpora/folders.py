"""One folder per label: ``ROOT/<label>/**/*.wav``. No speaker ids, so splits are random unless
``--path-pattern`` reads them from the paths (``path_pattern``)."""
from __future__ import annotations

from pathlib import Path

from ...errors import BadManifest
from .scan import Scan, audio_files, row


def prepare_folders(root: Path, *, loose: bool = False) -> Scan:
    """Scan label folders; audio directly under ``root`` (no label folder) is a problem, or with
    ``loose`` a row without a label (a path pattern names it)."""
    scan = Scan()
    labels = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not labels and not loose:
        raise BadManifest(f"{root}: no label folders found (expected ROOT/<label>/<files>)")
    for path in audio_files(root):
        rel = path.relative_to(root)
        if len(rel.parts) < 2 and not loose:
            scan.problems.append((str(path), "not inside a label folder (expected ROOT/<label>/<file>)"))
            continue
        scan.rows.append(row(path, label=rel.parts[0] if len(rel.parts) > 1 else ""))
    return scan
