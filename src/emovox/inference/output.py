"""Writing prediction rows as JSONL or CSV."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Iterable

from ..errors import BadConfig

FORMATS = ("jsonl", "csv")


def write_rows(rows: Iterable[dict], *, out: str | Path | None, fmt: str = "jsonl") -> list[tuple[str, str]]:
    """Stream rows to ``out`` (stdout when None); return (path, error) for rows that failed.

    CSV columns: path, label, score, top_k (as ``label:score;...``), start, end, error.

    Raises:
        BadConfig: unknown format.
    """
    if fmt not in FORMATS:
        raise BadConfig(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    failed = []
    handle: IO = open(out, "w", newline="") if out else sys.stdout
    try:
        writer = None
        if fmt == "csv":
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "score", "top_k", "start", "end", "error"],
                                    extrasaction="ignore")
            writer.writeheader()
        for row in rows:
            if "error" in row:
                failed.append((row["path"], row["error"]))
            if writer is None:
                handle.write(json.dumps(row) + "\n")
            else:
                flat = dict(row)
                if "top_k" in flat:
                    flat["top_k"] = ";".join(f"{t['label']}:{t['score']:.5f}" for t in row["top_k"])
                writer.writerow(flat)
            handle.flush()
    finally:
        if out:
            handle.close()
    return failed
