"""Data-parallel training on CPU processes (gloo): the sharded sampler, torchrun and accelerate
launches, resume, the frozen-feature path, and agreement with one process at the same global batch."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emovox.data.dataset import TRACE_ENV, LengthGroupedSampler
from emovox.errors import BadConfig
from emovox.rundir import RunDir, read_meta

# Dropout off, so that one process and two see the same arithmetic (up to summation order).
NO_DROPOUT = ["model.hidden_dropout=0", "model.attention_dropout=0", "model.activation_dropout=0",
              "model.feat_proj_dropout=0", "model.final_dropout=0", "model.layerdrop=0", "model.mask_time_prob=0"]
TRAIN = ["training.eval_steps=4", "training.logging_steps=2", "training.learning_rate=1e-3",
         "training.warmup_ratio=0.0", "augment.enabled=false", "data.max_seconds=1.0", *NO_DROPOUT]
LOSS_TOLERANCE = 1e-4  # final validation loss, 2 processes x batch 4 vs 1 process x batch 8 (measured: < 1e-6)


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [37, 48, 50])
def test_ranks_share_each_epoch_exactly_once(world, n):
    lengths = np.random.default_rng(n).integers(1000, 50000, n)
    for epoch in range(3):
        shards = [_epoch(LengthGroupedSampler(lengths, 4, seed=7, mega=2, num_replicas=world, rank=r), epoch)
                  for r in range(world)]
        assert len({len(s) for s in shards}) == 1, "every rank must take the same number of steps"
        assert all(len(s) == len(LengthGroupedSampler(lengths, 4, num_replicas=world)) for s in shards)
        seen = [i for s in shards for batch in s for i in batch]
        assert sorted(seen) == list(range(n)), "no duplicates, none missing"
        assert all(1 <= len(b) <= 5 for s in shards for b in s)


def test_two_ranks_see_the_global_batches_of_one_process_with_twice_the_batch():
    lengths = np.random.default_rng(0).integers(1000, 50000, 64)
    one = _epoch(LengthGroupedSampler(lengths, 8, seed=3, mega=3), 1)
    two = [_epoch(LengthGroupedSampler(lengths, 4, seed=3, mega=3, num_replicas=2, rank=r), 1) for r in (0, 1)]
    assert [sorted(a + b) for a, b in zip(*two)] == [sorted(g) for g in one]
    assert _epoch(LengthGroupedSampler(lengths, 8, seed=3, mega=3), 2) != one  # reshuffled per epoch


def test_balanced_sampling_is_sharded_too():
    lengths, weights = np.full(40, 16000), np.r_[np.full(30, 1 / 30), np.full(10, 1 / 10)]
    one = _epoch(LengthGroupedSampler(lengths, 8, weights=weights), 0)
    two = [_epoch(LengthGroupedSampler(lengths, 4, weights=weights, num_replicas=2, rank=r), 0) for r in (0, 1)]
    assert sorted(i for s in two for b in s for i in b) == sorted(i for b in one for i in b)


def test_fewer_clips_than_processes_is_a_config_error():
    with pytest.raises(BadConfig, match="2 training clip"):
        LengthGroupedSampler([1, 2], 4, num_replicas=3, rank=0)


def _env(**extra):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def _torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "emovox", *args]


def _accelerate(*args):
    # accelerate 1.x: `--cpu` starts one process unless MPI runs it (--mpirun_hostfile); `--multi_gpu`
    # is its torchrun launcher, and without CUDA emovox trains on the CPU (gloo) there
    port = str(29400 + os.getpid() % 500)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
            "-m", "emovox", *args]


def _run(cmd, **env):
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _trace(folder):
    return [json.loads(line) for p in sorted(folder.glob("rank-*.jsonl")) for line in p.read_text().splitlines()]


@pytest.fixture(scope="module")
def ddp_run(tiny_manifest, tmp_path_factory):
    """Two epochs on two torchrun processes (4 clips each per step), every loaded clip traced."""
    tmp = tmp_path_factory.mktemp("ddp")
    out, trace = tmp / "run", tmp / "trace"
    r = _run(_torchrun("train", "--manifest", str(tiny_manifest), "--out", str(out), "--model", "tiny", *TRAIN,
                       "training.per_device_train_batch_size=4", "training.num_train_epochs=2"),
             **{TRACE_ENV: str(trace)})
    return out, trace, r


def test_every_training_clip_once_per_epoch_across_ranks(ddp_run, tiny_manifest):
    _, trace, _ = ddp_run
    df = pd.read_csv(tiny_manifest)
    train_paths = sorted(df[df["split"] == "train"]["path"])
    rows = _trace(trace)
    assert {r["rank"] for r in rows} == {0, 1} and {r["epoch"] for r in rows} == {0, 1}
    for epoch in (0, 1):
        paths = [r["path"] for r in rows if r["epoch"] == epoch]
        dupes = [p for p, c in collections.Counter(paths).items() if c > 1]
        assert not dupes, f"epoch {epoch}: seen twice: {dupes}"
        assert sorted(paths) == train_paths, f"epoch {epoch}: missing {set(train_paths) - set(paths)}"
        per_rank = [{r["path"] for r in rows if r["epoch"] == epoch and r["rank"] == k} for k in (0, 1)]
        assert len(per_rank[0]) == len(per_rank[1]) == len(train_paths) // 2


def test_rank_zero_alone_writes_a_complete_run_that_predict_loads(ddp_run, tiny_manifest):
    out, _, r = ddp_run
    assert r.stdout.count("trained 8 steps") == 1, r.stdout  # one summary, from rank 0
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "emovox.json", "config.yaml",
                 "train_log.jsonl", "curves.png", "train_metrics.json"):
        assert (out / name).exists(), name
    assert len(list(RunDir(out).tensorboard.glob("events*"))) == 1  # one writer, not one per rank
    logs = [json.loads(line) for line in RunDir(out).log.read_text().splitlines()]
    assert [e["step"] for e in logs if "eval_loss" in e] == [4, 8]  # one gathered evaluation per eval step
    metrics = json.loads(RunDir(out).metrics.read_text())
    assert metrics["eval_n"] == int((pd.read_csv(tiny_manifest)["split"] == "validation").sum())
    assert read_meta(RunDir(out))["global_step"] == 8
    clips = list(pd.read_csv(tiny_manifest)["path"][:3])
    p = _run([sys.executable, "-m", "emovox", "predict", str(out), *clips])
    assert [json.loads(line)["path"] for line in p.stdout.splitlines()] == clips


def test_two_processes_match_one_at_the_same_global_batch(ddp_run, tiny_manifest, tmp_path):
    from emovox.training.train import train

    out, _, _ = ddp_run
    one = train(manifest=tiny_manifest, out=tmp_path / "one", model="tiny", progress=False,
                overrides=[*TRAIN, "training.per_device_train_batch_size=8", "training.num_train_epochs=2"])
    two = json.loads(RunDir(out).metrics.read_text())
    assert one.steps == 8
    assert abs(one.metrics["eval_loss"] - two["eval_loss"]) < LOSS_TOLERANCE, (one.metrics["eval_loss"], two["eval_loss"])


def test_resume_under_accelerate_launch(ddp_run, tmp_path, tiny_manifest):
    """The torchrun run continued for a third epoch by `accelerate launch`, from its last checkpoint."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU (gloo) launch")
    import shutil

    src, _, _ = ddp_run
    out, trace = tmp_path / "run", tmp_path / "trace"
    shutil.copytree(src, out)
    r = _run(_accelerate("train", "--manifest", str(tiny_manifest), "--out", str(out), "--model", "tiny", "--resume",
                         *TRAIN, "training.per_device_train_batch_size=4", "training.num_train_epochs=3"),
             **{TRACE_ENV: str(trace)})
    assert r.stdout.count("trained 12 steps") == 1, r.stdout + r.stderr[-2000:]
    rows = _trace(trace)
    assert {x["epoch"] for x in rows} == {2}  # epochs 0 and 1 came from the checkpoint
    df = pd.read_csv(tiny_manifest)
    assert sorted(x["path"] for x in rows) == sorted(df[df["split"] == "train"]["path"])
    assert read_meta(RunDir(out))["global_step"] == 12


def test_frozen_feature_path_shards_its_encoding(tiny_manifest, tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    r = _run(_torchrun("train", "--manifest", str(tiny_manifest), "--out", str(out), "--model", "tiny",
                       "model.freeze_backbone=true", "model.cache_features=true", "training.max_steps=6",
                       "training.per_device_train_batch_size=4", "data.max_seconds=1.0"),
             EMOVOX_CACHE=str(cache), **{TRACE_ENV: str(tmp_path / "trace")})
    assert "frozen-feature path on 2 processes" in r.stderr and "head then trains on rank 0" in r.stderr
    assert r.stdout.count("trained 6 steps") == 1
    df = pd.read_csv(tiny_manifest)
    used = sorted(df[df["split"].isin(["train", "validation"])]["path"])
    assert len(list(cache.rglob("*.npy"))) == len(used)
    encoded = [[x["path"] for x in _trace(tmp_path / "trace") if x["rank"] == k] for k in (0, 1)]
    assert sorted(encoded[0] + encoded[1]) == used and abs(len(encoded[0]) - len(encoded[1])) <= 2
    assert (out / "emovox.json").exists() and json.loads((out / "train_metrics.json").read_text())["eval_n"] == 8
    p = _run([sys.executable, "-m", "emovox", "predict", str(out), df["path"][0]], EMOVOX_CACHE=str(cache))
    assert json.loads(p.stdout)["label"]
