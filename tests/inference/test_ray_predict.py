"""Ray Data batch inference: the same rows as local predict, from a local cluster started once."""

import pytest

pytest.importorskip("ray.data")

from emovox.cli import main  # noqa: E402
from emovox.errors import BadManifest  # noqa: E402
from emovox.inference.predict import predict  # noqa: E402
from emovox.inference.ray_predict import predict_ray  # noqa: E402
from emovox.testing import make_broken_files, write_tone  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module (starting one costs seconds), on 127.0.0.1, shut down after."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Good clips of several lengths and rates, a long recording, and every kind of broken file."""
    d = tmp_path_factory.mktemp("mixed")
    for i in range(7):
        write_tone(d / f"good{i}.wav", 0.4 + 0.15 * i, freq=130 + 30 * i, seed=i, sr=(16000, 22050, 48000)[i % 3])
    write_tone(d / "long.wav", 23.0, freq=180, seed=9)
    make_broken_files(d / "broken")
    return d


def _same_rows(local, remote):
    assert [r["path"] for r in remote] == [r["path"] for r in local]
    for a, b in zip(local, remote):
        assert set(a) == set(b), a["path"]
        if "error" in a:
            assert a == b
            continue
        assert a["label"] == b["label"] and a.get("start") == b.get("start")
        assert [t["label"] for t in a["top_k"]] == [t["label"] for t in b["top_k"]]
        assert max(abs(x["score"] - y["score"]) for x, y in zip(a["top_k"], b["top_k"])) < 1e-5


def test_rows_equal_local_predict_for_a_folder_with_broken_files(cluster, tiny_run, mixed):
    local = list(predict(runs=[tiny_run], inputs=[mixed], top_k=6, windows=True))
    remote = list(predict_ray(runs=[tiny_run], inputs=[mixed], top_k=6, windows=True, num_actors=2, batch_size=3))
    assert sum("error" in r for r in local) >= 5 and any("start" in r for r in local)
    _same_rows(local, remote)


def test_parquet_list_in_parquet_out_and_exit_code(cluster, tiny_run, mixed, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(str(p) for p in mixed.rglob("*.wav"))
    pq.write_table(pa.table({"path": files, "note": ["x"] * len(files)}), tmp_path / "list.parquet")
    out = tmp_path / "rows.parquet"
    code = main(["predict", str(tiny_run), str(tmp_path / "list.parquet"), "--ray", "--num-actors", "1",
                 "--format", "parquet", "--out", str(out)])
    assert code == 1  # broken files are in the list
    rows = pq.read_table(out).to_pylist()
    local = list(predict(runs=[tiny_run], inputs=files))
    assert [r["path"] for r in rows] == files
    for a, b in zip(local, rows):
        assert (b["error"] is None) == ("error" not in a)
        if "error" not in a:
            assert a["label"] == b["label"] and abs(a["score"] - b["score"]) < 1e-5
    assert "failed:" in capsys.readouterr().err


def test_a_list_without_a_path_column_is_one_clear_error(cluster, tiny_run, tmp_path):
    (tmp_path / "list.csv").write_text("file\na.wav\n")
    with pytest.raises(BadManifest, match=r"list\.csv: no 'path' column \(columns: file\)"):
        predict_ray(runs=[tiny_run], inputs=[tmp_path / "list.csv"])
