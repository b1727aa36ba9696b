"""The light runtime against the full install, as whole commands: cold start (spawn -> exit with one
clip, its only row) and whole-process throughput for 1, 10 and 120 clips of RAVDESS actors 09-16
(never trained on), with the whisper-base probe trained on actors 01-08 and its fp32 export.

Sides (each a fresh process per pass, the same files, interleaved so load drifts spread over all):
  runtime           a venv with only ``pip install '.[runtime]'`` (no torch): ``emovox predict EXPORT``
  full, export      the full install: ``emovox predict EXPORT`` (onnxruntime, but torch installed)
  full, run dir     the full install: ``emovox predict RUN`` (torch)
  pipeline          ``transformers.pipeline("audio-classification")`` once per file (benchmarks.pipeline_cli)
Also: each install's site-packages size, the runtime's scores against the run dir's on the 120
clips, and where the full install's start-up goes (``python -X importtime``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import fixtures, whisper_models
from benchmarks.common import ROOT, WORK, Context, fmt, median, table

REPO = ROOT.parent
RUNTIME_VENV = WORK / "venv-runtime"
SIZES = (1, 10, 120)


def runtime_python(log) -> Path:
    """A venv holding only the runtime install's dependencies (emovox itself comes from src/ via
    PYTHONPATH, so the code measured is the working tree's). Built once (needs the registry)."""
    py = RUNTIME_VENV / "bin" / "python"
    if not (RUNTIME_VENV / ".installed").exists():
        log("  building the runtime venv (pip install '.[runtime]') ...")
        shutil.rmtree(RUNTIME_VENV, ignore_errors=True)
        subprocess.run(["python3", "-m", "venv", str(RUNTIME_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"{REPO}[runtime]"], check=True)
        (RUNTIME_VENV / ".installed").touch()
    if subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0:
        raise RuntimeError(f"{RUNTIME_VENV} has torch: not a runtime install")
    return py


def site_packages_mb(python: Path | str) -> dict:
    """Size of an interpreter's site-packages, and of torch and transformers in it."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    out = subprocess.run(["du", "-sm", str(site)], capture_output=True, text=True, check=True).stdout
    sizes = {"site_packages_mb": int(out.split()[0])}
    for name in ("torch", "transformers", "onnxruntime"):
        if (site / name).is_dir():
            sizes[f"{name}_mb"] = int(subprocess.run(["du", "-sm", str(site / name)], capture_output=True,
                                                     text=True).stdout.split()[0])
    return sizes


def run_timed(cmd: list[str], env: dict) -> dict:
    """Spawn -> exit wall time and the child's peak RSS (its own rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(REPO))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {err[-1500:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def import_profile(env: dict, run: Path, clip: str, top: int = 12) -> dict:
    """``python -X importtime -m emovox predict RUN clip`` (full install): the slowest top-level imports."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "emovox", "predict", str(run), clip],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    rows = []
    for line in proc.stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header line, or not importtime's
        depth = (len(parts[2]) - len(parts[2].lstrip()) - 1) // 2
        rows.append({"module": parts[2].strip(), "depth": depth, "cum_s": int(parts[1]) / 1e6})
    roots = sorted((r for r in rows if r["depth"] == 0), key=lambda r: -r["cum_s"])
    return {"total_import_s": sum(r["cum_s"] for r in rows if r["depth"] == 0), "top": roots[:top]}


def parity(runtime_rows: list[dict], torch_rows: list[dict]) -> dict:
    """Largest score difference (any listed label) and top-1 agreement, runtime vs the run dir."""
    worst, agree = 0.0, 0
    for a, b in zip(runtime_rows, torch_rows):
        sb = {t["label"]: t["score"] for t in b["top_k"]}
        worst = max([worst] + [abs(t["score"] - sb[t["label"]]) for t in a["top_k"] if t["label"] in sb])
        agree += a["label"] == b["label"]
    return {"max_score_diff": worst, "top1_agreement": agree / max(1, len(torch_rows)), "n": len(torch_rows)}


def _rows(cmd: list[str], env: dict) -> list[dict]:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run(ctx: Context) -> dict:
    run_dir = whisper_models.probe_run(ctx.quick, log=ctx.log)
    export = fixtures.exported(run_dir, int8=False, log=ctx.log)
    files, _ = whisper_models.test_files(whisper_models.ravdess_manifest())
    files = files[: max(SIZES)]
    rt_py = runtime_python(ctx.log)
    t = str(ctx.threads)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "OMP_NUM_THREADS": t}
    tmp = Path(tempfile.mkdtemp(prefix="emovox-bench-runtime-"))
    sides = {
        "runtime (export, no torch)": lambda fs: [str(rt_py), "-m", "emovox", "predict", str(export), *fs, "--threads", t],
        "full install, export": lambda fs: [sys.executable, "-m", "emovox", "predict", str(export), *fs, "--threads", t],
        "full install, run dir (torch)": lambda fs: [sys.executable, "-m", "emovox", "predict", str(run_dir), *fs,
                                                     "--threads", t],
        "pipeline() per file": lambda fs: [sys.executable, "-m", "benchmarks.pipeline_cli", str(run_dir), t,
                                           str(tmp / "pipe.jsonl"), *fs],
    }
    res: dict = {"sizes": {"runtime": site_packages_mb(rt_py), "full": site_packages_mb(sys.executable)},
                 "passes": {}, "files": len(files), "threads": ctx.threads}
    try:
        for n in SIZES:
            reps = 1 if n >= 100 or ctx.quick else ctx.reps(3 if n == 1 else 2)
            walls: dict[str, list[dict]] = {name: [] for name in sides}
            for r in range(reps):
                names = list(sides)
                for k in range(len(names)):  # rotated order per repeat
                    name = names[(k + r) % len(names)]
                    walls[name].append(run_timed(sides[name](files[:n]), env))
            res["passes"][str(n)] = {name: {"wall_s": median([w["wall_s"] for w in ws]),
                                            "all_wall_s": [round(w["wall_s"], 2) for w in ws],
                                            "peak_rss_mb": max(w["peak_rss_mb"] for w in ws)}
                                     for name, ws in walls.items()}
            ctx.log(f"  {n} clip(s): " + ", ".join(f"{k} {v['wall_s']:.1f}s" for k, v in res["passes"][str(n)].items()))
        res["parity"] = parity(_rows(sides["runtime (export, no torch)"](files), env),
                               _rows(sides["full install, run dir (torch)"](files), env))
        res["import_profile"] = import_profile(env, run_dir, files[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def render(res: dict) -> str:
    passes = res["passes"]
    names = list(next(iter(passes.values())))
    pipe = "pipeline() per file"
    rows = []
    for name in names:
        row = [name]
        for n in map(str, SIZES):
            p = passes.get(n, {}).get(name)
            row.append(f"{fmt(p['wall_s'], 1)} s ({fmt(passes[n][pipe]['wall_s'] / p['wall_s'], 2)}x)" if p else "-")
        row.append(fmt(max(p["peak_rss_mb"] for p in (passes[n][name] for n in passes)), 0))
        rows.append(row)
    sizes = res["sizes"]
    par = res.get("parity", {})
    prof = res.get("import_profile", {})
    top = ", ".join(f"{r['module']} {fmt(r['cum_s'], 2)} s" for r in prof.get("top", [])[:6])
    size_line = (f"runtime venv site-packages **{sizes['runtime']['site_packages_mb']} MB** (onnxruntime "
                 f"{sizes['runtime'].get('onnxruntime_mb', '-')} MB, no torch); the full install's "
                 f"{sizes['full']['site_packages_mb']} MB (torch {sizes['full'].get('torch_mb', '-')} MB, transformers "
                 f"{sizes['full'].get('transformers_mb', '-')} MB; the dev extra's test tools, ray and datasets included)")
    return "\n".join([
        "## Light runtime: cold start and whole-process throughput (whisper-base, RAVDESS)",
        "",
        f"`python -m benchmarks.run --only runtime`: the whisper-base probe (actors 01-08) and its fp32 export, on "
        f"RAVDESS actors 09-16; each cell the spawn-to-exit wall time of one command (median of its repeats; 1 clip: "
        f"the cold start, spawn to its only row), {res['threads']} threads, and in brackets how many times faster than "
        "the pipeline per file. Sides interleaved in rotated order.",
        "",
        table(["side", "1 clip", "10 clips", "120 clips", "peak RSS MB"], rows),
        "",
        f"- Install size: {size_line}.",
        f"- Scores: runtime vs the run dir on {par.get('n', 0)} clips: largest difference of any listed probability "
        f"{fmt(par.get('max_score_diff', float('nan')), 7)}, top-1 agreement {fmt(100 * par.get('top1_agreement', 0), 1)}%.",
        f"- Full install start-up (`python -X importtime -m emovox predict RUN clip`): {fmt(prof.get('total_import_s', 0), 1)} s "
        f"of imports; the slowest: {top}.",
    ])
