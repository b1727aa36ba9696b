"""Input lists as tables: CSV/Parquet with a path column, local or by URI, through expand_inputs."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emovox.errors import BadManifest
from emovox.inference.output import write_rows
from emovox.inference.predict import expand_inputs


def test_csv_and_parquet_lists_local_and_by_uri(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.csv").write_text("path,other\na.wav,1\n/abs/b.flac,2\n,3\n")
    assert expand_inputs([tmp_path / "sub" / "list.csv"]) == [str(tmp_path / "sub" / "a.wav"), "/abs/b.flac"]
    pq.write_table(pa.table({"path": ["/x/1.wav", "/x/2.wav"]}), tmp_path / "l.parquet")
    assert expand_inputs([tmp_path / "l.parquet"]) == ["/x/1.wav", "/x/2.wav"]
    assert expand_inputs([f"file://{tmp_path / 'l.parquet'}"]) == ["/x/1.wav", "/x/2.wav"]
    assert expand_inputs([tmp_path / "missing.csv"]) == [str(tmp_path / "missing.csv")]  # -> an error row


def test_lists_without_a_path_column_or_unreadable_name_the_file(tmp_path):
    pq.write_table(pa.table({"file": ["a"]}), tmp_path / "l.parquet")
    with pytest.raises(BadManifest, match=r"l\.parquet: no 'path' column \(columns: file\)"):
        expand_inputs([tmp_path / "l.parquet"])
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(BadManifest, match=r"bad\.parquet: cannot read the list of paths"):
        expand_inputs([tmp_path / "bad.parquet"])


def test_parquet_output_keeps_every_row_and_reports_failures(tmp_path):
    rows = [{"path": "a", "label": "ANG", "score": 0.9, "top_k": [{"label": "ANG", "score": 0.9}]},
            {"path": "b", "error": "empty file (0 bytes)"}]
    failed = write_rows(iter(rows), out=tmp_path / "o.parquet", fmt="parquet")
    assert failed == [("b", "empty file (0 bytes)")]
    back = pq.read_table(tmp_path / "o.parquet").to_pylist()
    assert back[0]["top_k"] == rows[0]["top_k"] and back[0]["error"] is None and back[1]["label"] is None
    from emovox.errors import BadConfig

    with pytest.raises(BadConfig, match="--out"):
        write_rows(iter(rows), out=None, fmt="parquet")
