"""``prepare`` on 10,005 synthetic clips (115 speakers x 87): workers=2 (emovox's default on this
machine) vs workers=1, each call in a fresh process, alternating, page cache warm.

``python -m benchmarks.prepare_bench '<json spec>'`` is the child.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Context, emit, fmt, interleaved, median, peak_rss_mb, run_child, synthetic_corpus, table

SPEAKERS = 115
TARGET_S = 60.0


def child(spec: dict) -> None:
    from emovox.data.prepare import prepare

    t = time.perf_counter()
    res = prepare(corpus="crema-d", root=spec["root"], out=spec["out"], workers=spec["workers"])
    emit({"wall_s": time.perf_counter() - t, "rows": res.rows, "peak_rss_mb": peak_rss_mb()})


def warm_cache(root: Path) -> float:
    """Read every file once so both sides start from the page cache."""
    t = time.perf_counter()
    for p in root.glob("*.wav"):
        p.read_bytes()
    return time.perf_counter() - t


def run(ctx: Context) -> dict:
    speakers = 12 if ctx.quick else SPEAKERS
    t = time.perf_counter()
    root = synthetic_corpus(speakers, log=ctx.log)
    gen = float((root / ".complete").read_text())
    n = len(list(root.glob("*.wav")))
    ctx.log(f"  prepare: {n} clips (warming the page cache)")
    warm = warm_cache(root)
    tmp = Path(tempfile.mkdtemp(prefix="emovox-bench-prepare-"))

    def side(workers: int):
        out = tmp / f"w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        return lambda: run_child("benchmarks.prepare_bench", {"root": str(root), "out": str(out), "workers": workers})

    try:
        raw = interleaved({"workers=1": side(1), "workers=2": side(2)}, ctx.reps(2), log=ctx.log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {k: {"wall_s": median([r["wall_s"] for r in v]), "runs": [r["wall_s"] for r in v],
               "peak_rss_mb": median([r["peak_rss_mb"] for r in v]), "rows": v[0]["rows"]} for k, v in raw.items()}
    return {"clips": n, "speakers": speakers, "generate_s": gen, "warm_read_s": warm, "sides": res,
            "fixture_s": time.perf_counter() - t}


def render(res: dict) -> str:
    a, b = res["sides"]["workers=1"], res["sides"]["workers=2"]
    verdict = "met" if b["wall_s"] < TARGET_S else "MISSED"
    rows = [[k, fmt(v["wall_s"], 1), fmt(res["clips"] / v["wall_s"], 0), " / ".join(fmt(x, 1) for x in v["runs"]),
             fmt(v["peak_rss_mb"], 0)] for k, v in res["sides"].items()]
    return "\n".join([
        f"## `prepare` on {res['clips']:,} synthetic clips", "",
        f"`emovox.data.prepare.prepare(corpus=\"crema-d\", ...)` on {res['speakers']} synthetic speakers × 87 clips "
        f"(generated once with `make_demo_corpus`, {fmt(res['generate_s'], 0)} s): scan, open and check every file, "
        "label, split by speaker, data report with plots. Fresh process per call, page cache warm, alternating.", "",
        table(["workers", "wall s (median)", "clips/s", "runs", "peak RSS MB (main)"], rows), "",
        f"workers=2 vs workers=1: **{fmt(a['wall_s'] / b['wall_s'])}×** faster. Target < {TARGET_S:.0f} s on 2 cores: "
        f"**{verdict}** ({fmt(b['wall_s'], 1)} s).",
    ])


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
