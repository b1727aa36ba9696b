"""Concurrent and interrupted runs: one writer per run dir (a stale lock is taken over), truncated
checkpoints skipped by --resume, a file-size limit is one line and --resume after it ends where an
uninterrupted run ends; prepare replaces its manifest atomically."""
from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emovox.cli import main
from emovox.training.runlock import LOCK_NAME, RunLocked, checkpoint_problem, run_lock, space_error

SHORT = ["training.max_steps=4", "training.eval_steps=2", "training.logging_steps=2",
         "training.per_device_train_batch_size=4", "training.learning_rate=1e-3", "training.warmup_ratio=0.0",
         "augment.enabled=false", "data.max_seconds=1.0"]


def _train_argv(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--manifest", str(manifest), "--out", str(out), "--model", "tiny", *SHORT, *extra]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_holder_is_named_and_a_stale_lock_taken_over(tmp_path):
    with run_lock(tmp_path / "run") as lock:
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(RunLocked, match=rf"pid {os.getpid()} on {socket.gethostname()}, started 20"):
            with run_lock(tmp_path / "run"):
                pass
    assert not lock.exists()  # released
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": "earlier"}))
    with run_lock(tmp_path / "run") as again:
        assert json.loads(again.read_text())["pid"] == os.getpid()


def test_two_trains_on_one_folder_one_refuses_in_one_line(tiny_manifest, tmp_path, capsys):
    import emovox.training.train  # noqa: F401 - imported before the race, not during it

    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "emovox.cli", *_train_argv(tiny_manifest, out),
                              "training.max_steps=30"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / LOCK_NAME).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert (out / LOCK_NAME).exists(), first.communicate()
    rc = main(_train_argv(tiny_manifest, out))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"in use by another `emovox train` (pid {first.pid} on {socket.gethostname()}, started" in err[0]
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-2000:]
    assert (out / "emovox.json").exists() and not (out / LOCK_NAME).exists()


@pytest.fixture(scope="module")
def uninterrupted(tiny_manifest, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_train_argv(tiny_manifest, out)) == 0
    return _final(out)


def _final(out: Path) -> dict:
    """The finished run's validation metrics (no timings)."""
    m = json.loads((out / "train_metrics.json").read_text())
    return {k: v for k, v in m.items() if k in ("eval_loss", "eval_accuracy", "eval_uar", "eval_macro_f1",
                                                 "temperature", "epoch")}


def test_resume_skips_a_truncated_checkpoint(tiny_manifest, tmp_path, uninterrupted, capsys):
    out = tmp_path / "run"
    assert main(_train_argv(tiny_manifest, out)) == 0
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # killed mid-save
    assert "truncated" in checkpoint_problem(out / "checkpoint-4")
    assert checkpoint_problem(out / "checkpoint-2") == ""
    capsys.readouterr()
    assert main(_train_argv(tiny_manifest, out, "--resume")) == 0
    err = capsys.readouterr().err
    assert f"skipping {out / 'checkpoint-4'}: model.safetensors: truncated" in err, err
    assert len(uninterrupted) >= 4 and _final(out) == pytest.approx(uninterrupted, abs=1e-6)


def _limited(limit: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_a_file_size_limit_is_one_line_and_resume_finishes_the_same(tiny_manifest, tmp_path, uninterrupted):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", *_train_argv(tiny_manifest, out)],
                          capture_output=True, text=True, preexec_fn=_limited(100_000), env=env, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and "file too large" in lines[0] and str(out) in lines[0], proc.stderr[-2000:]
    assert not (out / LOCK_NAME).exists()
    assert main(_train_argv(tiny_manifest, out, "--resume")) == 0  # the limit is gone: space freed
    assert _final(out) == pytest.approx(uninterrupted, abs=1e-6)


def test_space_errors_are_recognised():
    import errno

    full = space_error(OSError(errno.ENOSPC, "No space left on device", "/x/y.bin"), Path("/x"))
    assert full is not None and "disk full while writing /x/y.bin" in str(full)
    torch_like = RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
                              "file data/0: file write failed")
    assert space_error(torch_like, Path("/nowhere")) is not None
    assert space_error(RuntimeError("shape mismatch"), Path("/x")) is None


def test_prepare_replaces_the_manifest_atomically(tiny_corpus, tmp_path, monkeypatch):
    import pandas as pd

    from emovox.data import manifest as mf
    from emovox.data.prepare import prepare

    out = tmp_path / "prep"
    prepare(corpus="crema-d", root=tiny_corpus, out=out, scheme="crema-d-6", workers=1)
    before = (out / "manifest.csv").read_text()

    def crash(self, path, **kw):  # a kill half-way through writing the new manifest
        Path(path).write_text("path,speaker\n/half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus="crema-d", root=tiny_corpus, out=out, scheme="crema-d-6", workers=1)
    assert (out / "manifest.csv").read_text() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert mf.load_manifest(out / "manifest.csv").shape[0] > 0
