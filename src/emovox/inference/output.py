"""Writing prediction rows as JSONL, CSV or Parquet, streamed as they come."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Iterable

from ..errors import BadConfig

FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = ["path", "label", "score", "top_k", "start", "end", "error", "abstained"]
# ``--segment vad`` rows add these (inference.conversation): a segment's speaker; a summary row's
# kind (speaker or file), speech time, segment count and emotion shares.
SEGMENT_COLUMNS = ["speaker", "summary", "speech_seconds", "segments", "shares"]


def write_rows(rows: Iterable[dict], *, out: str | Path | None, fmt: str = "jsonl",
               segmented: bool = False) -> list[tuple[str, str]]:
    """Stream rows to ``out`` (stdout when None; Parquet needs a file); return (path, error) for
    rows that failed.

    CSV columns: path, label, score, top_k (as ``label:score;...``), start, end, error, abstained
    (``--min-confidence``); with
    ``segmented`` also speaker, summary, speech_seconds, segments, shares (as ``label:share;...``).
    Parquet has the same columns with ``top_k`` a list of {label, score} and ``shares`` a list of
    {label, share}, written in row groups as rows arrive.

    Raises:
        BadConfig: unknown format, Parquet without ``out``, or an ``out`` that cannot be written
            (its folder is made when missing).
    """
    if fmt not in FORMATS:
        raise BadConfig(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "parquet":
        if not out:
            raise BadConfig("--format parquet needs --out FILE (Parquet cannot stream to standard output)")
        return _write_parquet(rows, writable(out), segmented=segmented)
    failed = []
    handle: IO = open(writable(out), "w", newline="") if out else sys.stdout
    try:
        writer = None
        if fmt == "csv":
            writer = csv.DictWriter(handle, fieldnames=_columns(segmented), extrasaction="ignore")
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
                if "shares" in flat:
                    flat["shares"] = ";".join(f"{k}:{v:.4f}" for k, v in row["shares"].items())
                writer.writerow(flat)
            handle.flush()
    finally:
        if out:
            handle.close()
    return failed


def writable(out: str | Path) -> Path:
    """``out`` with its folder made, checked by opening it for writing.

    Raises:
        BadConfig: one line naming ``out`` and why it cannot be written (a folder, no permission, ...).
    """
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as exc:
        raise BadConfig(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    return path


def _columns(segmented: bool) -> list[str]:
    return COLUMNS + SEGMENT_COLUMNS if segmented else COLUMNS


def _write_parquet(rows: Iterable[dict], out: Path, group: int = 1024, *,
                   segmented: bool = False) -> list[tuple[str, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    top = pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))
    fields = [("path", pa.string()), ("label", pa.string()), ("score", pa.float64()), ("top_k", top),
              ("start", pa.float64()), ("end", pa.float64()), ("error", pa.string()), ("abstained", pa.bool_())]
    if segmented:
        fields += [("speaker", pa.string()), ("summary", pa.string()), ("speech_seconds", pa.float64()),
                   ("segments", pa.int64()), ("shares", pa.list_(pa.struct([("label", pa.string()),
                                                                             ("share", pa.float64())])))]
    schema = pa.schema(fields)
    columns = _columns(segmented)
    failed, pending = [], []
    with pq.ParquetWriter(str(out), schema) as writer:
        for row in rows:
            if "error" in row:
                failed.append((row["path"], row["error"]))
            flat = {c: row.get(c) for c in columns}
            if segmented and flat["shares"] is not None:
                flat["shares"] = [{"label": k, "share": v} for k, v in flat["shares"].items()]
            pending.append(flat)
            if len(pending) >= group:
                writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_pylist(pending, schema=schema))
    return failed
