"""Long recordings: ``emovox predict`` streams half-overlapping windows, so peak RSS stays flat and
time grows linearly with length. Recordings of 1, 10 and 30 minutes are built by concatenating
synthetic clips into a temp dir outside the repo; each is predicted in a fresh process.

``python -m benchmarks.long_audio '<json spec>'`` is the child.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SAMPLE_RATE, Context, emit, fmt, peak_rss_mb, rss_mb, run_child, synthetic_corpus, table

MINUTES = (1, 10, 30)
OLD_MINUTES = (1,)
OLD_BATCH_SECONDS = 64.0  # the default before commit c19d388 (now 16 s: one 10 s window per model call)


def make_recording(path: Path, minutes: float, clips: list[Path], *, seed: int = 0) -> float:
    """Write ``minutes`` of speech-like audio: synthetic clips in a seeded order with short pauses."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    target = int(minutes * 60 * SAMPLE_RATE)
    written = 0
    with sf.SoundFile(str(path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16") as f:
        while written < target:
            wave, _ = sf.read(str(clips[rng.integers(len(clips))]), dtype="float32")
            wave = np.concatenate([wave, np.zeros(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), np.float32)])
            wave = wave[: target - written]
            f.write(wave)
            written += len(wave)
    return written / SAMPLE_RATE


def child(spec: dict) -> None:
    import torch

    from emovox.inference.predict import Predictor

    torch.set_num_threads(spec["threads"])
    extra = {"batch_seconds": spec["batch_seconds"]} if spec.get("batch_seconds") else {}
    pred = Predictor.from_run_dir(spec["run"], backend=spec["backend"], threads=spec["threads"], **extra)
    loaded = rss_mb()
    t = time.perf_counter()
    rows = list(pred.predict_files([spec["path"]], windows=True))
    wall = time.perf_counter() - t
    main = rows[0]
    emit({"wall_s": wall, "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": loaded, "windows": len(rows) - 1,
          "label": main.get("label"), "error": main.get("error")})


def run(ctx: Context) -> dict:
    import soundfile as sf

    from benchmarks import fixtures

    minutes = (0.5, 2) if ctx.quick else MINUTES
    backend = "onnx int8"
    run_dir = fixtures.random_run("base")
    model_dir = fixtures.exported(run_dir, int8=True, log=ctx.log)
    clips = sorted(synthetic_corpus(16, log=ctx.log).glob("*.wav"))
    tmp = Path(tempfile.mkdtemp(prefix="emovox-bench-long-"))
    out: dict = {"backend": backend, "model": "base", "threads": ctx.threads, "rows": {}}
    jobs = [(m, None) for m in minutes] + [(m, OLD_BATCH_SECONDS) for m in ((0.5,) if ctx.quick else OLD_MINUTES)]
    try:
        for m, bs in jobs:
            path = tmp / f"recording_{m}min.wav"
            if not path.exists():
                make_recording(path, m, clips, seed=ctx.seed)
            label = f"{m}|{'old' if bs else 'emovox'}"
            ctx.log(f"  long audio: {m} min ({backend}, base{f', batch_seconds={bs:g}' if bs else ''})")
            r = run_child("benchmarks.long_audio", {"run": str(model_dir), "backend": "onnx", "threads": ctx.threads,
                                                     "path": str(path), "batch_seconds": bs}, log=ctx.log)
            seconds = sf.info(str(path)).duration
            r.update(audio_s=seconds, audio_per_s=seconds / r["wall_s"], rtf=r["wall_s"] / seconds,
                     file_mb=path.stat().st_size / 2 ** 20, minutes=m, batch_seconds=bs)
            out["rows"][label] = r
            ctx.log(f"    {fmt(r['wall_s'])} s, peak RSS {fmt(r['peak_rss_mb'], 0)} MB, {r['windows']} windows")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def render(res: dict) -> str:
    rows = []
    first = None
    for key, r in res["rows"].items():
        per_min = r["wall_s"] / (r["audio_s"] / 60)
        old = bool(r.get("batch_seconds"))
        if not old:
            first = first or per_min
        rows.append([f"{r.get('minutes', key)} min", f"batch_seconds={r['batch_seconds']:g} (default before c19d388)"
                     if old else "emovox as shipped", r["windows"], fmt(r["wall_s"], 1), fmt(per_min, 2),
                     fmt(per_min / first, 2) if first else "–", fmt(r["rtf"], 3), fmt(r["rss_after_load_mb"], 0),
                     fmt(r["peak_rss_mb"], 0)])
    emovox_rows = [r for r in res["rows"].values() if not r.get("batch_seconds")]
    worst = max(r["peak_rss_mb"] for r in emovox_rows)
    verdict = "met" if worst < 2048 else "MISSED"
    return "\n".join([
        "## Long recordings: streamed windows", "",
        f"`Predictor.predict_files([recording])`, {res['model']} model, backend {res['backend']}, "
        f"{res['threads']} threads, one fresh process per run (WAV 16 kHz 16-bit, synthetic clips concatenated "
        "with 0.2–0.8 s pauses, written to a temp dir). 10 s windows, 5 s hop (every second is scored twice). "
        "emovox now scores a long file one 10 s window per model call (16 s batch budget); the last row shows "
        "the earlier 64 s budget (6 windows per call), whose activations set the peak.", "",
        table(["recording", "settings", "windows", "wall s", "s per audio minute", "vs first (linear = 1.00)",
               "RTF", "RSS after load MB", "peak RSS MB"], rows), "",
        f"Peak RSS target (< 2 GB for base, emovox as shipped): **{verdict}** (worst {fmt(worst, 0)} MB).",
    ])


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
