"""Input lists as tables: a CSV or Parquet file with a ``path`` column (an emovox manifest is one),
local or on any filesystem ``pyarrow`` opens (``s3://``, ``gs://``, ``hdfs://``, ``file://`` ...).

Relative paths in a local list are taken from the list's folder, as manifests have them.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadManifest

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def is_uri(item: str) -> bool:
    """``scheme://...`` (a local path has no scheme)."""
    return "://" in item


def is_path_list(item: str) -> bool:
    """A table of paths: a ``.csv``/``.parquet`` file that exists here, or such a file's URI."""
    if not item.lower().endswith(TABLE_SUFFIXES):
        return False
    return is_uri(item) or Path(item).is_file()


def read_path_list(item: str) -> list[str]:
    """The ``path`` column of a CSV or Parquet list, in order (empty cells skipped).

    Raises:
        BadManifest: unreadable file, or no ``path`` column (the message names the file and its columns).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    try:
        if is_uri(item):
            fs, where = pafs.FileSystem.from_uri(item)
        else:
            fs, where = pafs.LocalFileSystem(), str(Path(item).resolve())
        with fs.open_input_file(where) as f:
            if item.lower().endswith(".csv"):
                table = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types={"path": pa.string()}))
            else:
                table = pq.read_table(f)
    except (OSError, pa.ArrowException) as exc:
        raise BadManifest(f"{item}: cannot read the list of paths ({str(exc).splitlines()[0]})") from None
    if "path" not in table.column_names:
        raise BadManifest(f"{item}: no 'path' column (columns: {', '.join(table.column_names) or 'none'})")
    paths = [p for p in table.column("path").to_pylist() if p]
    if is_uri(item):
        return [str(p) for p in paths]
    base = Path(item).resolve().parent
    return [p if os.path.isabs(p) or is_uri(p) else str(base / p) for p in map(str, paths)]
