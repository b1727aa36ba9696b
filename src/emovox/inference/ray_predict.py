"""Corpus-scale prediction on Ray Data: the input list is scored by a pool of actors, each holding
one ``Predictor`` (one model load per actor), and the rows stream back in input order.

The rows are exactly ``emovox predict``'s (the same ``Predictor.predict_files`` makes them in each
actor): one per input, ``{"path", "error"}`` for a file that cannot be scored. Ray is an optional
dependency (``pip install 'emovox[ray]'``).

What runs where: the driver expands the inputs (``predict.expand_inputs``: files, folders,
manifests, CSV/Parquet lists on any filesystem pyarrow opens) and writes the output; actors read
the audio, so the paths must be readable on every node (shared storage).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import BadAudio, BadConfig
from ..models.source import open_source
from .abstain import abstain, check_min_confidence
from .predict import Predictor, expand_inputs


class Scorer:
    """A Ray Data actor: loads the model(s) once, then turns batches of paths into rows."""

    def __init__(self, runs: Sequence[str], backend: str, threads: int | None, window_seconds: float | None,
                 top_k: int, windows: bool, allow_pickle: bool = False):
        self.predictor = Predictor.from_run_dir(list(runs), backend=backend, threads=threads,
                                                window_seconds=window_seconds, allow_pickle=allow_pickle)
        self.top_k, self.windows = top_k, windows

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One JSON list of rows per input path (the file's row, then its window rows, if asked)."""
        per_file: list[list[dict]] = []
        for row in self.predictor.predict_files(list(batch["path"]), top_k=self.top_k, windows=self.windows):
            if "start" in row:
                per_file[-1].append(row)
            else:
                per_file.append([row])
        return {"rows": np.array([json.dumps(r) for r in per_file], dtype=object)}


def _connect(address: str | None, progress: bool) -> bool:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local one. True when this
    call started Ray (and so shuts it down after)."""
    try:
        import ray
    except ImportError:
        raise BadConfig("--ray needs Ray Data: pip install 'emovox[ray]' (or 'ray[data]')") from None
    if ray.is_initialized():
        return False
    ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=progress, configure_logging=True)
    return True


def predict_ray(*, runs: Sequence[str | Path], inputs: Sequence[str | Path], address: str | None = None,
                num_actors: int = 1, cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0,
                batch_size: int = 32, backend: str = "torch", top_k: int = 3, windows: bool = False,
                window_seconds: float | None = None, threads: int | None = None,
                progress: bool = False, allow_pickle: bool = False,
                min_confidence: float | None = None) -> Iterator[dict]:
    """Rows for every input file, as ``predict.predict`` gives them, scored on a Ray cluster.

    ``threads`` (torch threads per actor) defaults to ``cpus_per_actor``. Uses the running Ray
    session if there is one; otherwise joins ``address`` / ``$RAY_ADDRESS`` or starts a local
    cluster, and shuts down what it started when the rows are consumed.

    Raises:
        BadRunDir: a model cannot be opened; BadAudio: no inputs; BadConfig: Ray missing or bad pool sizes.
    """
    if num_actors < 1 or cpus_per_actor <= 0 or gpus_per_actor < 0 or batch_size < 1:
        raise BadConfig(f"--num-actors ({num_actors}) and --cpus-per-actor ({cpus_per_actor}) must be positive, "
                        f"--gpus-per-actor ({gpus_per_actor}) not negative, the batch size ({batch_size}) positive")
    check_min_confidence(min_confidence)
    refs = [str(r) for r in runs]
    for ref in refs:  # fail here with one line, not in an actor with a remote traceback
        open_source(ref, allow_pickle=allow_pickle)
    files = expand_inputs(inputs)
    if not files:
        raise BadAudio(f"no audio files found in {', '.join(map(str, inputs))}")
    return abstain(_rows(refs, files, address=address, num_actors=num_actors, cpus=cpus_per_actor, gpus=gpus_per_actor,
                 batch_size=batch_size, scorer=(backend, threads or max(1, int(cpus_per_actor)), window_seconds,
                                                top_k, windows, allow_pickle), progress=progress), min_confidence)


def _rows(refs: list[str], files: list[str], *, address: str | None, num_actors: int, cpus: float, gpus: float,
          batch_size: int, scorer: tuple, progress: bool) -> Iterator[dict]:
    import ray
    import ray.data

    started = _connect(address, progress)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows in input order, as local predict writes them
        ctx.enable_progress_bars = progress
        # batches no larger than a fair share, so a short list still reaches every actor
        per = max(1, min(batch_size, math.ceil(len(files) / (2 * num_actors))))
        ds = ray.data.from_items([{"path": p} for p in files], override_num_blocks=math.ceil(len(files) / per))
        ds = ds.map_batches(Scorer, fn_constructor_args=(refs, *scorer), batch_size=per,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=num_actors),
                            num_cpus=cpus, num_gpus=gpus)
        for record in ds.iter_rows():
            yield from json.loads(record["rows"])
    finally:
        if started:
            ray.shutdown()
