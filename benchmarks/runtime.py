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

Section ``startup`` (:func:`run_startup`): the full install's ``emovox predict RUN clip`` alone, this
tree against ``STARTUP_BEFORE`` (interleaved cold starts, wall, CPU and peak RSS), where its time goes
stage by stage, and its imports grouped by package (self time, ``-X importtime``).
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
BEFORE = "48f9217"  # main before the light runtime: its cold start is measured beside (1 clip only)
STARTUP_BEFORE = "dd496d4"  # main before the full install's start-up pass (issue 27, item 3)


def runtime_python(log) -> Path:
    """A venv holding only the runtime install's dependencies (emovox itself comes from src/ via
    PYTHONPATH, so the code measured is the working tree's). Built once (needs the registry):
    ``.[runtime]``, measured (``size.json``), then the serve extra added."""
    py = RUNTIME_VENV / "bin" / "python"
    if not (RUNTIME_VENV / ".installed").exists():
        log("  building the runtime venv (pip install '.[runtime]') ...")
        shutil.rmtree(RUNTIME_VENV, ignore_errors=True)
        subprocess.run(["python3", "-m", "venv", str(RUNTIME_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"{REPO}[runtime]"], check=True)
        (RUNTIME_VENV / "size.json").write_text(json.dumps(site_packages_mb(py)))
        (RUNTIME_VENV / ".installed").touch()
    if subprocess.run([str(py), "-c", "import fastapi, uvicorn"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"{REPO}[runtime,serve]"], check=True)
    if subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0:
        raise RuntimeError(f"{RUNTIME_VENV} has torch: not a runtime install")
    return py


def serve_ready_s(cmd: list[str], env: dict, timeout: float = 60.0) -> float:
    """Spawn ``emovox serve ... --port 0`` -> the first 200 from ``/v1/ready``, in seconds."""
    import re
    import urllib.request

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(REPO), text=True)
    url = None
    try:
        while url is None:  # the log line naming the port comes once the socket is bound
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("emovox serve exited before listening")
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        while time.perf_counter() - t < timeout:
            try:
                with urllib.request.urlopen(url + "/v1/ready", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"not ready within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(10)


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
    """Spawn -> exit wall time, the child's CPU seconds (user + system) and its peak RSS (VmHWM,
    polled: the rusage of a child of this process would count the parent's pages it was forked with)."""
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(REPO))
    peak = [0.0]

    def poll() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                hwm = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:"))
                peak[0] = max(peak[0], int(hwm.split()[1]) / 1024)
            except (OSError, StopIteration, ValueError):
                pass
            time.sleep(0.05)

    import threading

    sampler = threading.Thread(target=poll, daemon=True)
    sampler.start()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.wait()
    wall = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {err[-1500:]}")
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak[0]}


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


def src_at(commit: str, dest: Path) -> Path:
    """``src/`` as it was at ``commit``, extracted under ``dest`` (to run the code before a change)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "src"], capture_output=True, cwd=str(REPO), check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


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
    env_before = {**env, "PYTHONPATH": os.pathsep.join([str(src_at(BEFORE, tmp / "before")), str(REPO)])}
    cold_only = {  # the same commands with the code before this change (no runtime: torch imported for the export too)
        f"full install, export, before ({BEFORE})": lambda fs: [sys.executable, "-m", "emovox", "predict", "--backend",
                                                                "onnx", str(export), *fs, "--threads", t],
        f"full install, run dir, before ({BEFORE})": lambda fs: [sys.executable, "-m", "emovox", "predict",
                                                                 str(run_dir), *fs, "--threads", t],
    }
    res: dict = {"sizes": {"runtime": json.loads((RUNTIME_VENV / "size.json").read_text()),
                           "runtime+serve": site_packages_mb(rt_py), "full": site_packages_mb(sys.executable)},
                 "passes": {}, "files": len(files), "threads": ctx.threads}
    try:
        for n in SIZES:
            reps = 3 if n == 1 else 1 if n >= 100 or ctx.quick else ctx.reps(2)
            these = {**sides, **(cold_only if n == 1 else {})}
            walls: dict[str, list[dict]] = {name: [] for name in these}
            for r in range(reps):
                names = list(these)
                for k in range(len(names)):  # rotated order per repeat
                    name = names[(k + r) % len(names)]
                    walls[name].append(run_timed(these[name](files[:n]), env_before if name in cold_only else env))
            res["passes"][str(n)] = {name: {"wall_s": median([w["wall_s"] for w in ws]),
                                            "all_wall_s": [round(w["wall_s"], 2) for w in ws],
                                            "peak_rss_mb": max(w["peak_rss_mb"] for w in ws)}
                                     for name, ws in walls.items()}
            ctx.log(f"  {n} clip(s): " + ", ".join(f"{k} {v['wall_s']:.1f}s" for k, v in res["passes"][str(n)].items()))
        res["parity"] = parity(_rows(sides["runtime (export, no torch)"](files), env),
                               _rows(sides["full install, run dir (torch)"](files), env))
        res["import_profile"] = import_profile(env, run_dir, files[0])
        serve = {"runtime": [str(rt_py), "-m", "emovox", "serve", str(export)],
                 "full install, run dir": [sys.executable, "-m", "emovox", "serve", str(run_dir)]}
        res["serve_ready_s"] = {k: median([serve_ready_s([*cmd, "--port", "0", "--threads", t], env)
                                           for _ in range(1 if ctx.quick else 3)]) for k, cmd in serve.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def render(res: dict) -> str:
    passes = res["passes"]
    names = list(passes["1"])
    pipe = "pipeline() per file"
    rows = []
    for name in names:
        row = [name]
        for n in map(str, SIZES):
            p = passes.get(n, {}).get(name)
            row.append(f"{fmt(p['wall_s'], 1)} s ({fmt(passes[n][pipe]['wall_s'] / p['wall_s'], 2)}x)" if p else "-")
        row.append(fmt(max(passes[n][name]["peak_rss_mb"] for n in passes if name in passes[n]), 0))
        rows.append(row)
    sizes = res["sizes"]
    par = res.get("parity", {})
    prof = res.get("import_profile", {})
    top = ", ".join(f"{r['module']} {fmt(r['cum_s'], 2)} s" for r in prof.get("top", [])[:6])
    size_line = (f"runtime venv site-packages **{sizes['runtime']['site_packages_mb']} MB** (onnxruntime "
                 f"{sizes['runtime'].get('onnxruntime_mb', '-')} MB, no torch; pip and setuptools included), "
                 f"{sizes['runtime+serve']['site_packages_mb']} MB with the serve extra; the full install's "
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
        f"- `emovox serve` spawn -> `/v1/ready` 200 (median of 3): runtime "
        f"{fmt(res.get('serve_ready_s', {}).get('runtime', float('nan')), 2)} s, full install with the run dir "
        f"{fmt(res.get('serve_ready_s', {}).get('full install, run dir', float('nan')), 2)} s.",
        f"- Full install start-up (`python -X importtime -m emovox predict RUN clip`): {fmt(prof.get('total_import_s', 0), 1)} s "
        f"of imports; the slowest: {top}.",
    ])


def targets(res: dict) -> list[list[str]]:
    """Issue 27's acceptance lines (the timing ones need a quiet machine: see the load table)."""
    ok = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    p = res["passes"]
    rt, pipe = "runtime (export, no torch)", "pipeline() per file"
    cold = p["1"][rt]["wall_s"]
    ratio = p["120"][pipe]["wall_s"] / p["120"][rt]["wall_s"] if "120" in p else float("nan")
    size = res["sizes"]["runtime"]["site_packages_mb"]
    par = res.get("parity", {})
    ready = res.get("serve_ready_s", {}).get("runtime", float("nan"))
    return [
        ["runtime: one clip (whisper-base export) ≤ 1.5 s wall, spawn to row", f"{fmt(cold, 1)} s", ok(cold <= 1.5)],
        ["runtime: whole process, 120 clips ≥ 3× pipeline() per file", f"{fmt(ratio)}×", ok(ratio >= 3)],
        ["runtime: site-packages ≤ 250 MB, no torch", f"{size} MB", ok(size <= 250)],
        [f"runtime: scores = the run dir's within 1e-4 ({par.get('n', 0)} unseen clips)",
         f"{fmt(par.get('max_score_diff', float('nan')), 7)}", ok(par.get("max_score_diff", 1) <= 1e-4)],
        ["runtime: serve answers /v1/ready within 3 s of start", f"{fmt(ready)} s", ok(ready <= 3)],
    ]


# -- the full install's start-up (section ``startup``) -------------------------------------------
# `emovox predict RUN clip` split into stages in one fresh process: each stage imports or builds only
# what the ones before it left undone, in the order the command meets them. CPU seconds beside wall:
# on a shared machine they move less with others' load than wall time does.
STAGES = r"""
import json, sys, time
run, clip, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
out, last = [], [time.process_time(), time.perf_counter()]
def mark(name):
    now = [time.process_time(), time.perf_counter()]
    out.append({"stage": name, "cpu_s": now[0] - last[0], "wall_s": now[1] - last[1]})
    last[:] = now
import emovox.cli, emovox.inference.predict
mark("emovox's CLI and predict modules (numpy, typer, pydantic, soundfile, soxr)")
import torch
mark("import torch")
import transformers
mark("import transformers (its lazy import structure, dependency checks)")
from emovox.models.source import open_source
source = open_source(run)
mark("model config (AutoConfig: configuration modules)")
from transformers import AutoModelForAudioClassification
from emovox.models.backbones import backbone_for
backbone_for(source.config, strict=False).classifier_class(AutoModelForAudioClassification)
mark("transformers' modelling modules (modeling_utils and the model's own)")
from emovox.inference.predict import Predictor, _torch_member
predictor = Predictor([_torch_member(source, threads)], source.scheme, source.max_seconds)
mark("build the model, load its weights, the feature extractor")
rows = list(predictor.predict_files([clip]))
mark("decode and score the clip")
print(json.dumps(out))
"""

# -X importtime self time by where it goes: group -> the top-level names (or dotted prefixes) in it
IMPORT_GROUPS = {
    "torch._dynamo, torch._inductor (transformers.masking_utils)": ("torch._dynamo", "torch._inductor"),
    "torch.distributed (torch; its tensor parallel: transformers' weight loading)": ("torch.distributed",),
    "torch (the rest)": ("torch", "torchgen"),
    "sympy, mpmath (torch's symbolic shapes)": ("sympy", "mpmath"),
    "scipy (transformers' object-detection loss)": ("scipy",),
    "transformers": ("transformers",),
    "tokenizers, accelerate, huggingface_hub, httpx, jinja2, PIL (transformers' imports)": (
        "tokenizers", "accelerate", "huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "jinja2", "PIL"),
    "numpy": ("numpy",),
    "emovox, typer, click, pydantic, soundfile, soxr": ("emovox", "typer", "click", "pydantic", "pydantic_core",
                                                        "annotated_types", "soundfile", "soxr"),
}
OTHER_IMPORTS = "everything else (standard library, yaml, safetensors, ...)"
WATCHED = ("sklearn", "pandas", "matplotlib", "datasets", "peft", "optuna", "onnx", "ray", "scipy", "torch._dynamo",
           "torch.distributed.tensor", "sympy")


def import_groups(env: dict, run: Path, clip: str) -> dict:
    """``python -X importtime -m emovox predict RUN clip``: self time summed per IMPORT_GROUPS group,
    the module count, and which of WATCHED got imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "emovox", "predict", str(run), clip],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    groups: dict[str, float] = {}
    names = []
    for line in proc.stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].strip()
        names.append(name)
        group = next((g for g, prefixes in IMPORT_GROUPS.items()
                      if any(name == p or name.startswith(p + ".") for p in prefixes)), OTHER_IMPORTS)
        groups[group] = groups.get(group, 0.0) + int(parts[0]) / 1e6
    imported = [w for w in WATCHED if any(n == w or n.startswith(w + ".") for n in names)]
    return {"self_s": groups, "total_s": sum(groups.values()), "modules": len(names), "imported": imported}


def stage_profile(env: dict, run: Path, clip: str, threads: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", STAGES, str(run), clip, threads], capture_output=True, text=True,
                          env=env, cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"stage profile failed: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_startup(ctx: Context) -> dict:
    """The full install's cold start for one clip, this tree vs STARTUP_BEFORE, interleaved."""
    from benchmarks.loadmon import LoadMonitor

    run_dir = whisper_models.probe_run(ctx.quick, log=ctx.log)
    files, _ = whisper_models.test_files(whisper_models.ravdess_manifest())
    clip, t = files[0], str(ctx.threads)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "OMP_NUM_THREADS": t}
    tmp = Path(tempfile.mkdtemp(prefix="emovox-bench-startup-"))
    sides = {"after (this tree)": env,
             f"before ({STARTUP_BEFORE})": {**env, "PYTHONPATH": os.pathsep.join(
                 [str(src_at(STARTUP_BEFORE, tmp / "before")), str(REPO)])}}
    cmd = [sys.executable, "-m", "emovox", "predict", str(run_dir), clip, "--threads", t]
    reps = max(5, ctx.reps(5, quick=2))
    res: dict = {"clip": clip, "threads": ctx.threads, "reps": reps, "cold": {}, "stages": {}, "imports": {}}
    try:
        names = list(sides)
        runs: dict[str, list[dict]] = {n: [] for n in names}
        with LoadMonitor() as mon:
            for r in range(reps):  # alternating order, so a load drift touches both sides alike
                for k in range(len(names)):
                    name = names[(k + r) % len(names)]
                    runs[name].append(run_timed(cmd, sides[name]))
        res["load"] = mon.summary()
        for name, rs in runs.items():
            res["cold"][name] = {key: median([x[key] for x in rs]) for key in ("wall_s", "cpu_s", "peak_rss_mb")}
            res["cold"][name]["all_wall_s"] = [round(x["wall_s"], 2) for x in rs]
        ctx.log("  cold start: " + ", ".join(f"{n} {v['wall_s']:.2f} s" for n, v in res["cold"].items()))
        res["same_rows"] = len({json.dumps(_rows(cmd, e)) for e in sides.values()}) == 1
        for name, e in sides.items():
            profiles = [stage_profile(e, run_dir, clip, t) for _ in range(3)]
            res["stages"][name] = [{"stage": p["stage"], **{k: median([q[i][k] for q in profiles])
                                                            for k in ("cpu_s", "wall_s")}}
                                   for i, p in enumerate(profiles[0])]
            res["imports"][name] = import_groups(e, run_dir, clip)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def render_startup(res: dict) -> str:
    names = list(res["cold"])
    after, before = names[0], names[1]
    cold = [[n, f"{fmt(c['wall_s'])} s", ", ".join(f"{w:.2f}" for w in c["all_wall_s"]), f"{fmt(c['cpu_s'])} s",
             fmt(c["peak_rss_mb"], 0)] for n, c in res["cold"].items()]
    st_b, st_a = res["stages"][before], res["stages"][after]
    stages = [[a["stage"], f"{fmt(b['cpu_s'])} / {fmt(b['wall_s'])}", f"{fmt(a['cpu_s'])} / {fmt(a['wall_s'])}"]
              for b, a in zip(st_b, st_a)]
    stages.append(["all stages", f"{fmt(sum(b['cpu_s'] for b in st_b))} / {fmt(sum(b['wall_s'] for b in st_b))}",
                   f"{fmt(sum(a['cpu_s'] for a in st_a))} / {fmt(sum(a['wall_s'] for a in st_a))}"])
    ib, ia = res["imports"][before], res["imports"][after]
    groups = sorted(set(ib["self_s"]) | set(ia["self_s"]), key=lambda g: -ib["self_s"].get(g, 0.0))
    imports = [[g, fmt(ib["self_s"].get(g, 0.0)), fmt(ia["self_s"].get(g, 0.0))] for g in groups]
    imports.append(["all imports", f"{fmt(ib['total_s'])} ({ib['modules']} modules)",
                    f"{fmt(ia['total_s'])} ({ia['modules']} modules)"])
    load = res.get("load", {})
    return "\n".join([
        "## Start-up of the full install: `emovox predict RUN clip` (whisper-base probe, torch)",
        "",
        f"`python -m benchmarks.run --only startup`: one RAVDESS clip of actor 09 with the whisper-base probe run dir, "
        f"{res['threads']} threads, the code of this tree against {before.split('(')[1].rstrip(')')} (main before "
        f"this pass), {res['reps']} cold starts each in alternating order (spawn to exit; CPU = the child's user + "
        f"system seconds). Load while they ran: 1-minute load mean {load.get('mean_1m', '-')} (max "
        f"{load.get('max_1m', '-')}), other processes' CPU {load.get('foreign_cores_mean', '-')} cores on average. "
        f"Rows equal on both sides: {'yes' if res.get('same_rows') else '**no**'}.",
        "",
        table(["code", "wall (median)", "wall, each run", "CPU (median)", "peak RSS MB"], cold),
        "",
        "Where the time goes, stage by stage in one process (median of 3; CPU / wall seconds; each stage imports "
        "or builds only what the ones before it left undone):",
        "",
        table(["stage", "before: CPU / wall s", "after: CPU / wall s"], stages),
        "",
        "Imports (`python -X importtime -m emovox predict RUN clip`; self time summed by package, seconds; "
        "under importtime's own overhead):",
        "",
        table(["package (who imports it)", "before s", "after s"], imports),
        "",
        f"- Imported on the torch path (of {', '.join(WATCHED)}): before {', '.join(ib['imported']) or 'none'}; "
        f"after {', '.join(ia['imported']) or 'none'}.",
    ])
