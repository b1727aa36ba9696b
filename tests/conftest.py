"""Shared fixtures: tiny corpora, a prepared manifest and a briefly trained tiny run (built once)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from a second thread, and on a busy 2-core machine torch's spinning
# threads can make them 10-80x slower; subprocesses (CLI tests) inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from emovox.testing import make_crema_corpus, test_data_dir  # noqa: E402

TINY_TRAIN = ["training.max_steps=12", "training.eval_steps=6", "training.logging_steps=2",
              "training.per_device_train_batch_size=4", "training.learning_rate=1e-3",
              "training.warmup_ratio=0.0", "augment.enabled=false", "data.max_seconds=1.0"]


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = test_data_dir()
    if path is None:
        pytest.skip("real speech (../shared/data or EMOVOX_TEST_DATA) is not present")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crema")
    make_crema_corpus(root)
    return root


@pytest.fixture(scope="session")
def tiny_manifest(tiny_corpus, tmp_path_factory) -> Path:
    from emovox.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared")
    return prepare(corpus="crema-d", root=tiny_corpus, out=out, scheme="crema-d-6", workers=1).manifest


@pytest.fixture(scope="session")
def tiny_run(tiny_manifest, tmp_path_factory) -> Path:
    from emovox.training.train import train

    out = tmp_path_factory.mktemp("run") / "run"
    train(manifest=tiny_manifest, out=out, model="tiny", overrides=TINY_TRAIN, progress=False)
    return out


def wait_for(fn, timeout: float, proc=None):
    """Poll ``fn`` every 0.1 s until it returns something true (returned); fail the test on timeout
    or when ``proc`` (a server subprocess) exits first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}")
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s")


# Files whose tests take a minute or more of one worker (`make test` prints the slowest): scheduled
# first, so that `-n 2 --dist loadfile` does not end with one worker running a long file alone.
LONG_FILES = ("test_readme.py", "test_distributed.py", "test_realdata_whisper.py", "test_train.py",
              "test_ray_predict.py", "test_demo_pipeline.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: file order kept otherwise
