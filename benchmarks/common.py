"""Shared pieces of the benchmarks: machine facts, data fixtures, timing, memory, child processes.

Everything the benchmarks generate (synthetic corpora, manifests, exported models, per-section
JSON results) lives in ``benchmarks/_work`` (git-ignored) or a temp dir; real speech is read in
place from ``EMOVOX_TEST_DATA`` and never copied.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent
WORK = Path(os.environ.get("EMOVOX_BENCH_WORK", ROOT / "_work"))
RESULTS_DIR = WORK / "results"
SAMPLE_RATE = 16_000
RESULT_TAG = "BENCH_RESULT "

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass
class Context:
    """Run-wide settings handed to every section."""

    quick: bool = False
    repeats: int = 3
    threads: int = 2
    seed: int = 0
    extra: bool = False  # also the wav2vec2 side studies (levers, variants, threads, batching, int8 choices)
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    def reps(self, full: int, quick: int = 1) -> int:
        """Repeat count for a comparison: ``full`` scaled by --repeats (3 = as designed)."""
        return max(1, quick if self.quick else round(full * self.repeats / 3))


# --- machine ---------------------------------------------------------------------------------

def cpu_facts() -> dict[str, Any]:
    """CPU model, core count, clock, SIMD flags and the fp32 peak they imply (assumption stated)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = _first(r"model name\s*:\s*(.+)", text) or platform.processor() or "unknown"
    mhz = float(_first(r"cpu MHz\s*:\s*([\d.]+)", text) or 0.0)
    flags = set((_first(r"flags\s*:\s*(.+)", text) or "").split())
    family, cpu_model = _first(r"cpu family\s*:\s*(\d+)", text), _first(r"\nmodel\s*:\s*(\d+)", text)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if "avx512f" in flags:
        per_cycle, why = 64, "AVX-512: 16 fp32 lanes x 2 FMA units x 2 FLOP"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, why = 32, "AVX2+FMA: 8 fp32 lanes x 2 FMA units x 2 FLOP (Zen 2/3/4, Haswell+)"
    elif "avx" in flags:
        per_cycle, why = 16, "AVX without FMA: 8 lanes x (1 add + 1 mul)"
    else:
        per_cycle, why = 8, "SSE: 4 lanes x (1 add + 1 mul)"
    peak = cores * mhz / 1000.0 * per_cycle
    simd = sorted(f for f in flags if re.match(r"(avx|fma|amx|vnni|avx512)", f))
    return {"model": model, "family": family, "cpu_model": cpu_model, "cores": cores, "mhz": mhz,
            "flags": simd, "flop_per_cycle_per_core": per_cycle, "peak_assumption": why,
            "peak_gflops": round(peak, 1), "vnni": any("vnni" in f for f in flags)}


def _first(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text)
    return m.group(1).strip() if m else None


def versions() -> dict[str, str]:
    import numpy
    import onnxruntime
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__,
            "torch_threads": str(torch.get_num_threads()), "kernel": platform.release()}


def mem_total_gb() -> float:
    m = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    return round(int(m.group(1)) / 1024 ** 2, 1) if m else 0.0


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


# --- memory ------------------------------------------------------------------------------------

def peak_rss_mb(pid: str | int = "self") -> float:
    """Peak resident set size (VmHWM) of a process, MB."""
    m = re.search(r"VmHWM:\s*(\d+)\s*kB", Path(f"/proc/{pid}/status").read_text())
    return round(int(m.group(1)) / 1024, 1) if m else float("nan")


def rss_mb(pid: str | int = "self") -> float:
    m = re.search(r"VmRSS:\s*(\d+)\s*kB", Path(f"/proc/{pid}/status").read_text())
    return round(int(m.group(1)) / 1024, 1) if m else float("nan")


class TreePssSampler:
    """Max over time of the summed PSS of this process and its children (DataLoader workers):
    PSS splits shared pages between processes, so forked workers are not double counted."""

    def __init__(self, every: float = 0.5):
        self.every = every
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += _pss_kb(p.pid)
                except (OSError, psutil.Error):
                    pass
            self.peak_mb = max(self.peak_mb, total / 1024)
            self._stop.wait(self.every)

    def start(self) -> "TreePssSampler":
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mb, 1)


def _pss_kb(pid: int) -> int:
    m = re.search(r"^Pss:\s*(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
    return int(m.group(1)) if m else 0


# --- statistics and formatting -----------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def ratio(new: float, old: float) -> float:
    return float(new) / float(old) if old else float("nan")


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None or x != x:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int, log: Callable[[str], None] | None = None,
                ) -> dict[str, list[Any]]:
    """Run every variant once per round (A B C, A B C, ...), rotating who goes first each round so
    slow drifts in machine load spread over all variants; returns each variant's results in order."""
    names = list(variants)
    out: dict[str, list[Any]] = {n: [] for n in names}
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(k + r) % len(names)]
            out[name].append(variants[name]())
            if log:
                log(f"    round {r + 1}/{repeats} {name}: {_brief(out[name][-1])}")
    return out


def _brief(x: Any) -> str:
    if isinstance(x, dict):
        return ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in list(x.items())[:4])
    return str(x)


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """``with timed() as t: ...`` then ``t["wall"]``, ``t["cpu"]`` (this process, all threads)."""
    t: dict[str, float] = {}
    w0, c0 = time.perf_counter(), time.process_time()
    yield t
    t["wall"], t["cpu"] = time.perf_counter() - w0, time.process_time() - c0


# --- child processes ---------------------------------------------------------------------------

def run_child(module: str, spec: dict, *, timeout: float = 1800, log: Callable[[str], None] | None = None) -> dict:
    """Run ``python -m module '<spec json>'`` in a fresh interpreter (clean peak RSS) and return the
    JSON it prints after ``RESULT_TAG``; stderr is kept for the error message."""
    cmd = [sys.executable, "-m", module, json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT.parent))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
    raise RuntimeError(f"{module} {spec} failed (exit {proc.returncode}):\n{tail}")


def emit(result: dict) -> None:
    """Print a child's result for ``run_child`` and leave immediately (no teardown work)."""
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --- data fixtures -------------------------------------------------------------------------------

def ravdess_dir() -> Path | None:
    """RAVDESS 16 kHz speech (``EMOVOX_TEST_DATA``/ravdess16k), read in place; None when absent."""
    from emovox.testing import test_data_dir

    base = test_data_dir()
    return base / "ravdess16k" if base is not None else None


def ravdess_files() -> list[Path]:
    root = ravdess_dir()
    return sorted(root.rglob("*.flac")) if root else []


def synthetic_corpus(speakers: int, *, seed: int = 0, log: Callable[[str], None] | None = None) -> Path:
    """The CREMA-D-like synthetic corpus with ``speakers`` actors, generated once into _work."""
    from emovox.data.synthetic import make_demo_corpus

    out = WORK / f"synthetic_{speakers}spk_seed{seed}"
    done = out / ".complete"
    if not done.exists():
        if log:
            log(f"  generating the synthetic corpus ({speakers} speakers) into {out} ...")
        t = time.perf_counter()
        make_demo_corpus(out=out, speakers=speakers, seed=seed)
        done.write_text(f"{time.perf_counter() - t:.1f}\n")
    return out


def prepared(corpus: str, root: Path, name: str, *, scheme: str | None = None) -> Path:
    """``emovox prepare`` of a corpus, once, into _work/<name>; returns the manifest path."""
    from emovox.data.prepare import prepare

    out = WORK / name
    manifest = out / "manifest.csv"
    if not manifest.exists():
        prepare(corpus=corpus, root=root, out=out, scheme=scheme, drop_invalid=True)
    return manifest


def bench_manifest(manifest: Path, name: str, *, n_val: int = 8, seed: int = 0) -> Path:
    """A copy of a manifest whose rows are all ``train`` except ``n_val`` validation clips, so a
    training benchmark spends its time on training steps (validation is never reached anyway)."""
    import pandas as pd

    out = WORK / f"{name}.csv"
    if not out.exists():
        df = pd.read_csv(manifest, keep_default_na=False)
        df["split"] = "train"
        val = df.sample(n=n_val, random_state=seed).index
        df.loc[val, "split"] = "validation"
        df.to_csv(out, index=False)
    return out


def save_result(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def load_result(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def marginal_spread(rows) -> float:
    """Linearity of wall time in audio length: the cost of each added stretch of audio (seconds
    per added audio minute between consecutive lengths), max over min. A fixed start-up cost
    (model load, first-call warm-up) is not length-dependent, so it is left out; 1.0 = linear."""
    pts = sorted((r["audio_s"] / 60, r["wall_s"]) for r in rows)
    marginal = [(w2 - w1) / (m2 - m1) for (m1, w1), (m2, w2) in zip(pts, pts[1:]) if m2 > m1]
    return max(marginal) / min(marginal) if len(marginal) > 1 and min(marginal) > 0 else float("nan")
