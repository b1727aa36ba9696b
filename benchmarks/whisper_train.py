"""Whisper fine-tuning, the whole command and its training loop: the plain Hugging Face way
(``WhisperForAudioClassification`` + ``Trainer``, 30 s padding) vs ``emovox train`` (own length,
dynamic padding, length-grouped batches), each in a fresh process (``benchmarks.whisper_train_child``),
alternating; the same encoder dir, clips, frozen layers, batch, learning rate and steps."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import whisper_models
from benchmarks.common import RESULT_TAG, ROOT, Context, fmt, median, table

FREEZE_LAYERS = 4  # whisper-base has 6 layers: the upper 2 and the head train (quick, tiny.en: 2 of 4)


def child(spec: dict, ctx: Context) -> dict:
    """The child in a fresh interpreter; wall time measured here, from spawn to exit."""
    tmp = tempfile.mkdtemp(prefix="emovox-bench-wtrain-")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT.parent), os.environ.get("PYTHONPATH", "")])}
    try:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.whisper_train_child", json.dumps({**spec, "tmp": tmp})],
                              capture_output=True, text=True, timeout=3600, env=env, cwd=str(ROOT.parent))
        wall = time.perf_counter() - t
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_TAG):
                r = json.loads(line[len(RESULT_TAG):])
                r["command_wall_s"] = wall
                ctx.log(f"    {spec['side']}: command {wall:.0f} s, loop {r['loop_s_per_step']:.2f} s/step, "
                        f"setup {r['setup_s']:.0f} s, after training {r['after_train_s']:.0f} s")
                return r
        raise RuntimeError(f"whisper_train_child {spec['side']} failed (exit {proc.returncode}):\n"
                           + "\n".join(proc.stderr.strip().splitlines()[-25:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(ctx: Context) -> dict:
    name, model = whisper_models.encoder(ctx.quick)
    manifest = whisper_models.ravdess_manifest()
    steps, warmup, batch = (6, 2, 2) if ctx.quick else (24, 4, 2)
    freeze = 2 if ctx.quick else FREEZE_LAYERS
    spec = {"model": model, "manifest": str(manifest), "batch": batch, "steps": steps, "warmup": warmup, "lr": 5e-5,
            "freeze_layers": freeze, "max_seconds": 5.0, "seed": ctx.seed, "threads": ctx.threads}
    ctx.log(f"  whisper training ({name}, {steps} steps of batch {batch}): plain vs emovox, fresh processes")
    rounds = ctx.reps(1)
    runs: dict[str, list] = {"plain": [], "emovox": []}
    for r in range(rounds):
        for side in (("plain", "emovox") if r % 2 == 0 else ("emovox", "plain")):
            runs[side].append(child({**spec, "side": side}, ctx))
    keys = ("command_wall_s", "loop_s_per_step", "step_s_median", "setup_s", "warmup_s", "after_train_s", "peak_rss_mb")
    out = {"model": name, "spec": spec, "rounds": rounds,
           "sides": {s: {**{k: median([x[k] for x in v]) for k in keys}, "runs": v} for s, v in runs.items()}}
    import pandas as pd

    df = pd.read_csv(manifest, keep_default_na=False)
    out["clips"] = {s: int((df["split"] == s).sum()) for s in ("train", "validation")}
    return out


def targets(res: dict) -> list[list[str]]:
    p, e = res["sides"]["plain"], res["sides"]["emovox"]
    loop = p["loop_s_per_step"] / e["loop_s_per_step"]
    whole = p["command_wall_s"] / e["command_wall_s"]
    return [[f"Whisper training loop ≥ 3× plain ({res['model']}, {res['spec']['steps']} steps)", f"{fmt(loop)}×",
             "met" if loop >= 3 else "**missed**"],
            ["Whisper whole command never slower than plain", f"{fmt(whole)}×", "met" if whole >= 1 else "**missed**"]]


def render(res: dict) -> str:
    s = res["spec"]
    rows = []
    for side, m in res["sides"].items():
        rows.append([side, fmt(m["command_wall_s"], 0), fmt(m["loop_s_per_step"], 2), fmt(m["setup_s"], 0),
                     fmt(m["warmup_s"], 0), fmt(m["after_train_s"], 0), fmt(m["peak_rss_mb"], 0)])
    p, e = res["sides"]["plain"], res["sides"]["emovox"]
    rows.append(["**plain / emovox**", f"**{fmt(p['command_wall_s'] / e['command_wall_s'])}×**",
                 f"**{fmt(p['loop_s_per_step'] / e['loop_s_per_step'])}×**", "", "", "", ""])
    return "\n".join([
        f"## Whisper fine-tuning: the plain way vs `emovox train` ({res['model']}, RAVDESS)", "",
        f"Both sides fine-tune the same encoder dir on the same {res['clips']['train']} training clips (RAVDESS actors "
        f"01-08 less the validation actor) for {s['steps']} optimizer steps of batch {s['batch']} at lr {s['lr']:g}, with "
        f"the front end and the first {s['freeze_layers']} encoder layers frozen, augmentation off on both, then score the "
        f"{res['clips']['validation']} validation clips once and save the model. Plain: `WhisperForAudioClassification` + "
        "HF `Trainer`, its feature extractor padding every clip to 30 s (3000 log-mel frames), clips read with soundfile. "
        "emovox: `emovox.training.train.train()` with `configs/whisper-finetune.yaml` (each clip at its own length, "
        "dynamic padding, length-grouped batches, decoded once up front, clips featurized ahead in a background thread). "
        "Each side is a fresh process (`python -m benchmarks.whisper_train_child`); *command* = wall time from spawn to "
        f"exit (imports, loading, decoding, training, evaluation, saving); *loop* = mean s/step after {s['warmup']} "
        f"warm-up steps. {res['rounds']} round(s), sides alternating.", "",
        table(["side", "command s", "loop s/step", "setup s (to first step)", "warm-up s", "after training s (eval + save)",
               "peak RSS MB"], rows), "",
        "Where each command's time goes: " + "; ".join(
            f"{side} {fmt(m['setup_s'], 0)} s to the first step (imports, loading"
            f"{', decoding every clip' if side == 'emovox' else ''}), "
            f"{fmt(m['command_wall_s'] - m['setup_s'] - m['after_train_s'], 0)} s training, "
            f"{fmt(m['after_train_s'], 0)} s evaluating and saving" for side, m in res["sides"].items())
        + ". The plain loop's steps each run the encoder on 2 × 1500 frames (30 s) where emovox runs 2 × ~190 "
        "(the clips' own ~3.8 s); attention is quadratic in that length, the rest linear."])
