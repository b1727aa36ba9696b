"""``python -m benchmarks.serve_load``: a bounded loopback load test of ``emovox serve``.

Starts ``emovox serve`` on 127.0.0.1 (a free port) in a subprocess, sends real clips
(RAVDESS 16 kHz from ``EMOVOX_TEST_DATA``; synthetic tones when absent) to ``POST /v1/predict/raw``
at each concurrency level (default 1, 4, 16; ``--requests`` per level, cut off after
``--level-seconds``), and reports throughput, p50/p95/p99 latency, errors (must be 0) and the
server's RSS (must stay under 1.5x its RSS after the first request), beside
``Predictor.predict_files`` on the same files in this process. Writes a Markdown table
(``--out``, default /tmp/serve_results.md). Not a timed test: run it by hand.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import fmt, ravdess_files, rss_mb, table

HOST = "127.0.0.1"  # loopback only, by design


def clips(n: int, work: Path) -> list[Path]:
    """``n`` real clips when the data is present, else synthetic tones of speech-like length."""
    real = ravdess_files()
    if real:
        return [Path(p) for p in real[:n]]
    from emovox.testing import write_tone

    return [write_tone(work / f"tone{i}.wav", 2.5 + 0.1 * i, freq=120 + 13 * i, seed=i) for i in range(n)]


def start_server(model: str, workers: int, threads: int | None, log: Path) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "emovox.cli", "serve", model, "--host", HOST, "--port", "0", "--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        m = re.search(rf"on http://{re.escape(HOST)}:(\d+)", log.read_text())
        if m and _get(int(m.group(1)), "/v1/ready") == 200:
            return proc, int(m.group(1))
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready within 120 s")


def _get(port: int, path: str) -> int:
    try:
        c = http.client.HTTPConnection(HOST, port, timeout=5)
        c.request("GET", path)
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return 0


def level(port: int, bodies: list[bytes], *, concurrency: int, requests: int, seconds: float) -> dict:
    """``requests`` POSTs from ``concurrency`` keep-alive clients; stops early after ``seconds``."""
    lock, next_i, lat, errors = threading.Lock(), [0], [], []
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        while time.monotonic() < deadline:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= requests:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/predict/raw", body=bodies[i % len(bodies)],
                             headers={"Content-Type": "application/octet-stream"})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=120)
                r = exc
            with lock:
                (lat if ok else errors).append(time.perf_counter() - t0 if ok else repr(getattr(r, "status", r)))
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan"))
    return {"concurrency": concurrency, "done": len(lat), "errors": len(errors), "error_kinds": sorted(set(errors))[:3],
            "wall_s": wall, "rps": len(lat) / wall if wall else 0.0, "p50": q(0.50), "p95": q(0.95), "p99": q(0.99)}


def predictor_rate(model: str, files: list[Path], threads: int | None, repeats: int) -> float:
    """Files per second of ``Predictor.predict_files`` on the same files, in this process."""
    from emovox.inference.predict import Predictor

    p = Predictor.from_run_dir(model, threads=threads)
    list(p.predict_files(files[:2]))  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        rows = list(p.predict_files(files))
    rate = repeats * len(files) / (time.perf_counter() - t0)
    if any("error" in r for r in rows):
        raise SystemExit("Predictor.predict_files returned error rows")
    return rate


def default_model(size: str, work: Path) -> str:
    """A randomly initialised ``size`` run dir (speed does not depend on the weights)."""
    from emovox.labels import get_scheme
    from emovox.models.presets import init_model
    from emovox.rundir import RunDir, write_meta

    out, scheme = work / f"random_{size}", get_scheme("crema-d-21")
    init_model(size=size, scheme=scheme, out=out, seed=0)
    write_meta(RunDir(out), {"scheme": scheme.to_dict(), "max_seconds": 5.0, "temperature": 1.0,
                             "model_source": size, "seed": 0})
    return str(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model to serve (default: a random emovox run of --size)")
    ap.add_argument("--size", default="small", help="tiny, small or base when --model is not given")
    ap.add_argument("--levels", default="1,4,16", help="comma-separated concurrency levels")
    ap.add_argument("--requests", type=int, default=200, help="requests per level")
    ap.add_argument("--level-seconds", type=float, default=120.0, help="cut a level off after this long")
    ap.add_argument("--files", type=int, default=24, help="distinct clips to cycle through")
    ap.add_argument("--workers", type=int, default=2, help="the server's --workers")
    ap.add_argument("--threads", type=int, default=None, help="the server's --threads (default: cores / workers)")
    ap.add_argument("--out", default="/tmp/serve_results.md")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="serve_load_"))
    model = args.model or default_model(args.size, work)
    files = clips(args.files, work)
    bodies = [f.read_bytes() for f in files]
    proc, port = start_server(model, args.workers, args.threads, work / "server.log")
    try:
        rss_ready = rss_mb(proc.pid)
        first = level(port, bodies, concurrency=1, requests=1, seconds=60)
        rss_first = rss_mb(proc.pid)
        results = []
        for c in (int(x) for x in args.levels.split(",")):
            r = level(port, bodies, concurrency=c, requests=args.requests, seconds=args.level_seconds)
            r["rss_mb"] = rss_mb(proc.pid)
            results.append(r)
            print(f"concurrency {c}: {r['done']} ok, {r['errors']} errors, {r['rps']:.2f} req/s, "
                  f"p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, p99 {r['p99']:.0f} ms, RSS {r['rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(15)
    # the same CPU threads per model call as the server's (its default: cores / workers)
    threads = args.threads or max(1, len(os.sched_getaffinity(0)) // args.workers)
    base = predictor_rate(model, files, threads, repeats=3)
    text = report(args, model, files, rss_ready, rss_first, first, results, base, threads)
    Path(args.out).write_text(text)
    print(text)
    bad = [r for r in results if r["errors"]] or first["errors"]
    grown = max(r["rss_mb"] for r in results) > 1.5 * rss_first
    return 1 if bad or grown else 0


def report(args, model: str, files: list[Path], rss_ready: float, rss_first: float, first: dict, results: list[dict],
           base: float, threads: int) -> str:
    rows = [[r["concurrency"], f"{r['done']}/{args.requests}", r["errors"], fmt(r["rps"]), fmt(r["p50"], 0),
             fmt(r["p95"], 0), fmt(r["p99"], 0), fmt(r["rss_mb"], 0), fmt(r["rss_mb"] / rss_first),
             fmt(r["rps"] / base)] for r in results]
    secs = sum(_duration(f) for f in files) / len(files)
    return "\n".join([
        "### `emovox serve` under load (loopback)",
        "",
        f"Model `{Path(model).name}`; {len(files)} clips (mean {secs:.1f} s) cycled through `POST /v1/predict/raw`; "
        f"server `--workers {args.workers}`{f' --threads {args.threads}' if args.threads else ''}; "
        f"{os.cpu_count()} CPU(s), shared. Server RSS {rss_ready:.0f} MB when ready, {rss_first:.0f} MB after the "
        f"first request ({first['p50']:.0f} ms). `Predictor.predict_files` on the same files in one process "
        f"({threads} thread(s), as each server worker): {base:.2f} files/s.",
        "",
        table(["concurrency", "requests ok", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "RSS MB",
               "RSS / after 1st", "vs predict_files"], rows),
        "",
    ])


def _duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


if __name__ == "__main__":
    sys.exit(main())
