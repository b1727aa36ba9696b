"""Whisper on real speech: ``emovox predict`` vs ``pipeline("audio-classification")`` per file on a
whisper-base probe trained on RAVDESS actors 01-08, scored on the 480 clips of actors 09-16 it never
saw (speed and top-1 agreement from the same passes, interleaved in chunks); long recordings in
windows; FLOPs and the share of the fp32 peak; where the time goes (cProfile)."""
from __future__ import annotations

import cProfile
import io
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import fixtures, whisper_models
from benchmarks.common import SAMPLE_RATE, Context, fmt, marginal_spread, run_child, table
from benchmarks.inference import durations, pipeline_pass, predictor_pass

CHUNK = 60  # files per interleaving round
PARTIAL_CHUNKS = 2  # paths marked partial score only the first chunks (the pad_to_window parity pair)


def _top1_pipeline(rows: list) -> list[str]:
    return [r[0]["label"] for r in rows]


def _top1_emovox(rows: list) -> list[str]:
    return [r.get("label", "") for r in rows]


def interleaved_chunks(variants: dict, files: list[str], ctx: Context) -> dict:
    """Every variant scores every file once: the files go in chunks, each chunk to every variant
    in an order rotated per chunk, so load drifts spread over all of them. Wall time and top-1
    labels per variant."""
    for fn, *_ in variants.values():
        fn(files[:2])  # warm-up (first-call allocations, onnxruntime's first run)
    names = list(variants)
    out = {n: {"wall": 0.0, "labels": []} for n in names}
    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    for r, chunk in enumerate(chunks):
        for k in range(len(names)):
            name = names[(k + r) % len(names)]
            fn, top1, partial = variants[name]
            if partial and r >= PARTIAL_CHUNKS:
                continue
            t = time.perf_counter()
            rows = fn(chunk)
            out[name]["wall"] += time.perf_counter() - t
            out[name]["labels"] += top1(rows)
            out[name]["files"] = out[name].get("files", 0) + len(chunk)
            out[name]["audio_s"] = out[name].get("audio_s", 0.0) + float(durations([Path(f) for f in chunk]).sum())
        ctx.log(f"    chunk {r + 1}/{len(chunks)}: " + ", ".join(f"{n} {out[n]['wall']:.0f}s" for n in names))
    return out


def agree(a: list[str], b: list[str]) -> dict:
    x, y = np.asarray(a), np.asarray(b)
    return {"top1_agreement": float(np.mean(x == y)), "flips": int(np.sum(x != y)), "n": len(x)}


def profile_predict(run: Path, files: list[str], threads: int, top: int = 10) -> list[dict]:
    """cProfile of ``Predictor.predict_files`` (torch) over a few clips: where the time goes."""
    run_pass = predictor_pass(run, "torch", threads)
    run_pass(files[:2])
    prof = cProfile.Profile()
    prof.enable()
    run_pass(files)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())  # the outermost cumulative time
    rows = []
    for (path, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append({"func": f"{Path(path).name}:{line}({func})", "calls": nc, "self_s": tt, "cum_s": ct,
                     "cum_share": ct / total})
    rows.sort(key=lambda r: -r["self_s"])
    return rows[:top]


def whisper_flops(run: Path, seconds=(1.0, 2.5, 4.0)) -> dict:
    """FLOPs of the run dir's model at its own length (emovox) and padded to its window (pipeline)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from emovox.inference.export import load_torch_classifier

    model, fe = load_torch_classifier(run)
    model.eval()
    if hasattr(model, "set_attn_implementation"):  # FlopCounterMode does not count CPU SDPA
        model.set_attn_implementation("eager")
    else:
        model.config._attn_implementation = "eager"
    from emovox.models.backbones import backbone_for

    family = backbone_for(model.config)
    counts = {}
    for s in (*seconds, float(fe.n_samples) / SAMPLE_RATE):
        feats = family.featurize(fe, np.zeros(int(s * SAMPLE_RATE), np.float32) + 1e-3)
        x = torch.from_numpy(feats)[None]
        mask = torch.ones(1, x.shape[-1], dtype=torch.long)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(input_features=x, attention_mask=mask)
        counts[str(s)] = float(fc.get_total_flops())
    xs = np.array(seconds)
    coeffs = np.polyfit(xs, [counts[str(s)] for s in seconds], 2)[::-1]
    return {"counts": counts, "coeffs": [float(c) for c in coeffs], "window_s": float(fe.n_samples) / SAMPLE_RATE}


def trim_db_of(run_dir: Path) -> float:
    """The run dir's saved ``model.trim_silence_db`` (0: no trimming)."""
    import json

    from emovox.models.backbones.base import TRIM_FLAG

    return float(json.loads((run_dir / "preprocessor_config.json").read_text()).get(TRIM_FLAG) or 0)


def encoded_seconds(files: list[str], window_s: float, *, trim_db: float) -> dict[str, list[float]]:
    """Seconds of audio the encoder runs per file at its own length: whole (up to the window) and
    after the run dir's silence trimming (``emovox.data.audio.trim_silence``, as predict does)."""
    from emovox.data.audio import load_audio, trim_silence

    whole, trimmed = [], []
    for f in files:
        wave = load_audio(f, max_seconds=window_s)
        whole.append(len(wave) / SAMPLE_RATE)
        trimmed.append(len(trim_silence(wave, trim_db) if trim_db else wave) / SAMPLE_RATE)
    return {"untrimmed": whole, "trimmed": trimmed}


def flops_at(fm: dict, seconds: float) -> float:
    c0, c1, c2 = fm["coeffs"]
    return c0 + c1 * seconds + c2 * seconds ** 2


def run(ctx: Context) -> dict:
    name, _ = whisper_models.encoder(ctx.quick)
    manifest = whisper_models.ravdess_manifest()
    files, truth = whisper_models.test_files(manifest)
    if ctx.quick:
        files, truth = files[::10], truth[::10]
    run_dir = whisper_models.probe_run(ctx.quick, log=ctx.log)
    trimmed = whisper_models.probe_run(ctx.quick, trim=True, log=ctx.log)
    padded = whisper_models.probe_run(ctx.quick, pad_to_window=True, log=ctx.log)
    fp32 = fixtures.exported(run_dir, int8=False, log=ctx.log)
    int8 = fixtures.exported(run_dir, int8=True, log=ctx.log)
    trimmed_fp32 = fixtures.exported(trimmed, int8=False, log=ctx.log)
    t = ctx.threads
    variants = {
        "pipeline": (pipeline_pass(run_dir, t), _top1_pipeline, False),
        "emovox torch fp32": (predictor_pass(run_dir, "torch", t), _top1_emovox, False),
        "emovox ONNX fp32": (predictor_pass(fp32, "onnx", t), _top1_emovox, False),
        "emovox ONNX int8": (predictor_pass(int8, "onnx", t), _top1_emovox, False),
        # no pipeline of its own: the pipeline's cost per clip does not depend on the weights (same
        # architecture, same window), and what it scores on a trimmed run dir means even less
        "emovox torch fp32 (trimmed run dir)": (predictor_pass(trimmed, "torch", t), _top1_emovox, False),
        "emovox ONNX fp32 (trimmed run dir)": (predictor_pass(trimmed_fp32, "onnx", t), _top1_emovox, False),
        "pipeline (pad_to_window run dir)": (pipeline_pass(padded, t), _top1_pipeline, True),
        "emovox torch fp32 (pad_to_window run dir)": (predictor_pass(padded, "torch", t), _top1_emovox, True),
    }
    ctx.log(f"  whisper inference ({name}): {len(files)} unseen clips, {len(variants)} paths interleaved")
    raw = interleaved_chunks(variants, files, ctx)
    audio_s = float(durations([Path(f) for f in files]).sum())
    fm = whisper_flops(run_dir)
    lengths = encoded_seconds(files, fm["window_s"], trim_db=trim_db_of(trimmed))
    n_part = raw["pipeline (pad_to_window run dir)"]["files"]
    res = {"model": name, "files": len(files), "audio_s": audio_s, "flops": fm, "trim_db": trim_db_of(trimmed),
           "trimmed_encoded_s": float(sum(lengths["trimmed"])),
           "gflop_per_file": {k: [flops_at(fm, d) / 1e9 for d in v] for k, v in lengths.items()},
           "train": fixtures.info(run_dir), "train_trimmed": fixtures.info(trimmed), "train_padded": fixtures.info(padded),
           "variants": {k: {"wall": v["wall"], "audio_per_s": v["audio_s"] / v["wall"], "files_per_s": v["files"] / v["wall"],
                            "files": v["files"]} for k, v in raw.items()}}
    res["gflop_per_file"]["window"] = [fm["counts"][str(fm["window_s"])] / 1e9] * len(files)
    lab = {k: v["labels"] for k, v in raw.items()}
    res["labels"] = {k: lab[k] for k in ("pipeline", "emovox torch fp32", "emovox ONNX fp32")}
    res["accuracy"] = {k: float(np.mean(np.asarray(v) == np.asarray(truth[:len(v)]))) for k, v in lab.items()}
    res["accuracy_first_n"] = n_part
    res["accuracy_first"] = {k: float(np.mean(np.asarray(lab[k][:n_part]) == np.asarray(truth[:n_part])))
                             for k in ("pipeline", "emovox torch fp32")}
    res["agreement"] = {
        "emovox torch fp32 vs pipeline": agree(lab["emovox torch fp32"], lab["pipeline"]),
        "emovox ONNX fp32 vs pipeline": agree(lab["emovox ONNX fp32"], lab["pipeline"]),
        "emovox ONNX int8 vs pipeline": agree(lab["emovox ONNX int8"], lab["pipeline"]),
        "emovox ONNX fp32 vs emovox torch fp32": agree(lab["emovox ONNX fp32"], lab["emovox torch fp32"]),
        "emovox ONNX int8 vs emovox torch fp32": agree(lab["emovox ONNX int8"], lab["emovox torch fp32"]),
        "trimmed run dir vs own-length run dir: emovox torch": agree(lab["emovox torch fp32 (trimmed run dir)"],
                                                                      lab["emovox torch fp32"]),
        "pad_to_window: emovox torch vs pipeline": agree(lab["emovox torch fp32 (pad_to_window run dir)"],
                                                          lab["pipeline (pad_to_window run dir)"]),
    }
    res["export"] = {"fp32": fixtures.info(fp32), "int8": fixtures.info(int8)}
    res["whole_process"] = whole_process(run_dir, fp32, files[:min(len(files), PARTIAL_CHUNKS * CHUNK)], t, ctx)
    res["profile"] = profile_predict(run_dir, files[:8 if ctx.quick else 24], t)
    del variants
    res["long"] = long_audio(ctx, int8)
    return res


def whole_process(run_dir: Path, onnx_dir: Path, files: list[str], threads: int, ctx: Context) -> dict:
    """Spawn-to-exit wall time of each side as a command on the same files, as an outside script
    would time them: ``python -m benchmarks.pipeline_cli`` (pipeline once per file) and
    ``emovox predict`` with torch and with ONNX fp32; their top-1 labels too."""
    import json
    import os
    import subprocess
    import sys

    exe = Path(sys.executable)
    script = exe.with_name("emovox")  # the console script users run, as installed in this environment
    emovox = [str(script)] if script.exists() else [str(exe), "-m", "emovox"]
    predict = [*emovox, "predict", "--threads", str(threads), "--top-k", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    tmp = Path(tempfile.mkdtemp(prefix="emovox-bench-cmd-"))
    sides = {  # name -> (the in-process path it repeats, command writing its rows to OUT)
        "plain: pipeline once per file": (
            "pipeline", lambda out: [str(exe), "-m", "benchmarks.pipeline_cli", str(run_dir), str(threads), str(out), *files]),
        "emovox predict (torch)": ("emovox torch fp32", lambda out: [*predict, str(run_dir), *files, "--out", str(out)]),
        "emovox predict --backend onnx (fp32)": (
            "emovox ONNX fp32", lambda out: [*predict, "--backend", "onnx", str(onnx_dir), *files, "--out", str(out)]),
    }
    res = {}
    try:
        for i, (name, (same_as, cmd)) in enumerate(sides.items()):
            out = tmp / f"{i}.jsonl"
            t = time.perf_counter()
            proc = subprocess.run(cmd(out), capture_output=True, text=True, env=env, cwd=str(Path(__file__).parents[1]))
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
            labels = [json.loads(line)["label"] for line in out.read_text().splitlines() if line.strip()]
            res[name] = {"wall_s": wall, "files": len(files), "labels": labels, "same_as": same_as}
            ctx.log(f"  whole process, {name}: {wall:.1f} s for {len(files)} files")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def long_audio(ctx: Context, model_dir: Path) -> dict:
    """A 1, 10 and 30 minute recording of RAVDESS clips in a row, predicted in windows (fresh process each)."""
    import soundfile as sf

    from benchmarks.common import ravdess_files
    from benchmarks.long_audio import make_recording

    minutes = (0.5, 2) if ctx.quick else (1, 10, 30)
    clips = ravdess_files()
    tmp = Path(tempfile.mkdtemp(prefix="emovox-bench-long-whisper-"))
    rows = {}
    try:
        for m in minutes:
            path = tmp / f"recording_{m}min.wav"
            make_recording(path, m, clips, seed=ctx.seed)
            ctx.log(f"  whisper long audio: {m} min (ONNX int8)")
            r = run_child("benchmarks.long_audio", {"run": str(model_dir), "backend": "onnx", "threads": ctx.threads,
                                                     "path": str(path), "batch_seconds": None}, log=ctx.log)
            seconds = sf.info(str(path)).duration
            r.update(audio_s=seconds, minutes=m, rtf=r["wall_s"] / seconds)
            rows[str(m)] = r
            ctx.log(f"    {fmt(r['wall_s'])} s, peak RSS {fmt(r['peak_rss_mb'], 0)} MB, {r['windows']} windows")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"backend": "onnx int8", "rows": rows}


# --- report ------------------------------------------------------------------------------------

def targets(res: dict) -> list[list[str]]:
    v, a = res["variants"], res["agreement"]
    pipe = v["pipeline"]["audio_per_s"]
    ok = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    best = max(v["emovox torch fp32"]["audio_per_s"], v["emovox ONNX fp32"]["audio_per_s"]) / pipe
    i8 = v["emovox ONNX int8"]["audio_per_s"] / pipe
    rows = [[f"Whisper predict fp32 ≥ 3× pipeline ({res['model']}, {res['files']} unseen RAVDESS clips)", f"{fmt(best)}×", ok(best >= 3)],
            ["Whisper predict int8 ≥ 5× pipeline", f"{fmt(i8)}×", ok(i8 >= 5)]]
    if "emovox ONNX fp32 (trimmed run dir)" in v:
        cut = max(v[f"emovox {b} fp32 (trimmed run dir)"]["audio_per_s"] for b in ("torch", "ONNX")) / pipe
        rows.append([f"Whisper predict fp32 ≥ 3× pipeline, run dir trained with `model.trim_silence_db="
                     f"{fmt(res['trim_db'], 0)}`", f"{fmt(cut)}×", ok(cut >= 3)])
    for key, goal in (("emovox torch fp32 vs pipeline", 0.99), ("pad_to_window: emovox torch vs pipeline", 0.99),
                      ("emovox ONNX int8 vs emovox torch fp32", 0.995)):
        x = a[key]["top1_agreement"]
        rows.append([f"Whisper top-1 agreement ≥ {100 * goal:g}%: {key}", f"{100 * x:.2f}%", ok(x >= goal)])
    lg = res.get("long", {}).get("rows", {})
    if lg:
        worst = max(r["peak_rss_mb"] for r in lg.values())
        spread = marginal_spread(lg.values())
        rows.append(["Whisper long audio: peak RSS < 2 GB", f"{fmt(worst, 0)} MB", ok(worst < 2048)])
        rows.append(["Whisper long audio: time linear (s per added audio minute between lengths, max/min)",
                     fmt(spread), ok(spread <= 1.2)])
    return rows


def _group(name: str) -> str:
    """Which run dir a path scores: '' (own length), 'trimmed' or 'pad_to_window'."""
    for g in ("trimmed", "pad_to_window"):
        if f"({g} run dir)" in name:
            return g
    return ""


def gflop_of(res: dict, name: str, files: int) -> float:
    """fp32-equivalent GFLOP that path ``name`` runs over its first ``files`` clips."""
    g = _group(name)
    kind = "window" if name.startswith("pipeline") or g == "pad_to_window" else (g or "untrimmed")
    return float(sum(res["gflop_per_file"][kind][:files]))


def render(res: dict, machine: dict) -> str:
    peak = machine["cpu"]["peak_gflops"]
    v = res["variants"]
    tr, trt, trp = res.get("train", {}), res.get("train_trimmed", {}), res.get("train_padded", {})
    rows = []
    for k, m in v.items():
        g = _group(k)
        ref = v.get(f"pipeline ({g} run dir)", v["pipeline"])["audio_per_s"]
        gfs = gflop_of(res, k, m["files"]) / m["wall"]
        rows.append([f"{k} ({m['files']} clips)", fmt(m["files_per_s"]), fmt(m["audio_per_s"]),
                     f"{fmt(m['audio_per_s'] / ref)}×",
                     f"{100 * res['accuracy'][k]:.1f}%", fmt(gfs, 0), f"{100 * gfs / peak:.0f}%", fmt(m["wall"], 0)])
    db = fmt(res["trim_db"], 0)
    out = ["## Whisper on real speech: `pipeline()` per file vs `emovox predict`", "",
           f"`{res['model']}` probe trained with `emovox train --config configs/whisper-probe-stock.yaml` on RAVDESS actors "
           f"01-08 (validation UAR {fmt(tr.get('val_uar'))}; its twins with `model.trim_silence_db={db}` "
           f"{fmt(trt.get('val_uar'))} and `model.pad_to_window=true` {fmt(trp.get('val_uar'))}), "
           f"scored on the {res['files']} clips of actors 09-16 it never saw ({res['audio_s']:.0f} s of audio). Every path "
           f"scores every clip once (the pad_to_window twin's rows: the first {min(PARTIAL_CHUNKS * CHUNK, res['files'])}); the clips go in chunks of "
           f"{CHUNK}, each chunk to every path in a rotated order "
           "(interleaved, so the load on the shared machine falls on all paths alike). Pipeline: "
           "`transformers.pipeline(\"audio-classification\", model=RUN)` once per file on the same run dir, which pads "
           f"every clip to the run dir's saved window ({fmt(res['flops']['window_s'], 0)} s) and averages over the padding; "
           "emovox encodes each clip at its own length and pools over real frames; the trimmed twin first cuts leading "
           f"and trailing silence (frames {db} dB under the loudest, as configs/whisper-probe.yaml does: "
           f"{res['trimmed_encoded_s']:.0f} s of the {res['audio_s']:.0f} s are encoded). *vs pipeline* compares each "
           "path with the pipeline on its own run dir (the trimmed twin's: with the pipeline on the own-length run dir, "
           "whose cost per clip is the same: same architecture, same window). "
           "GFLOP/s: FlopCounterMode FLOPs of the lengths each path runs / wall time (int8: the same fp32-equivalent "
           "FLOPs) and % of the nominal fp32 peak.", "",
           table(["path", "files/s", "audio-s/s", "vs pipeline", "accuracy (8 classes)", "GFLOP/s", "% fp32 peak",
                  "wall s"], rows), ""]
    rows = [[k, f"{100 * a['top1_agreement']:.2f}%", a["flips"], a["n"]] for k, a in res["agreement"].items()]
    out += ["Top-1 agreement on the same clips:", "", table(["pair", "top-1 agreement", "flips", "clips"], rows), ""]
    acc = res["accuracy"]
    out += [f"Why an own-length run dir and the pipeline disagree: the pipeline pads each clip to "
            f"{fmt(res['flops']['window_s'], 0)} s (and does not trim) and its mean pooling averages the padded frames "
            f"in, so it scores inputs the probe was not trained on (accuracy {100 * acc['pipeline']:.1f}% against "
            f"emovox's {100 * acc['emovox torch fp32']:.1f}% on the same clips). A run dir trained with "
            "`model.pad_to_window=true` runs exactly what the pipeline runs (agreement row `pad_to_window`), at the "
            "pipeline's cost per clip: parity with the pipeline and the own-length speed-up exclude each other; "
            "emovox keeps own length as the default because it is both faster and more accurate."
            + (f" On the {res['accuracy_first_n']} clips the pad_to_window twin scores, the own-length run dir's accuracy is "
               f"{100 * res['accuracy_first']['emovox torch fp32']:.1f}% (pipeline "
               f"{100 * res['accuracy_first']['pipeline']:.1f}%)." if "accuracy_first" in res else ""), ""]
    fm = res["flops"]
    n = res["files"]
    own, window = gflop_of(res, "emovox", n), gflop_of(res, "pipeline", n)
    cut = gflop_of(res, "emovox (trimmed run dir)", n)
    out += [f"FLOPs per clip (GFLOP): " + ", ".join(f"{float(s):g} s {c / 1e9:.2f}" for s, c in fm["counts"].items())
            + f"; over these clips emovox runs {fmt(own, 0)} GFLOP at their own length ({fmt(cut, 0)} trimmed), "
              f"the pipeline {fmt(window, 0)} GFLOP ({fmt(window / own)}× more; {fmt(window / cut)}× the trimmed)."]
    wp = res.get("whole_process", {})
    if wp:
        base = next(iter(wp.values()))
        rows = [[k, r["files"], fmt(r["wall_s"], 1), f"{fmt(base['wall_s'] / r['wall_s'])}×",
                 f"{100 * np.mean(np.asarray(r['labels']) == np.asarray(res['labels'][r['same_as']][:r['files']])):.1f}%"]
                for k, r in wp.items()]
        out += ["", f"Whole process, as an outside script times it: each side as one command on the first "
                f"{base['files']} clips, spawn to exit (imports, loading the model, decoding, scoring, writing), "
                "one after the other:", "",
                table(["command", "files", "wall s", "vs plain", "top-1 as in the table above"], rows)]
    prof = res.get("profile", [])
    if prof:
        rows = [[p["func"], p["calls"], fmt(p["self_s"], 3), fmt(p["cum_s"], 3), f"{100 * p['cum_share']:.0f}%"] for p in prof]
        out += ["", "Where the time goes (cProfile of `Predictor.predict_files`, torch fp32, top entries by own time):", "",
                table(["function", "calls", "own s", "cumulative s", "cumulative share"], rows)]
    lg = res.get("long", {}).get("rows", {})
    if lg:
        first = None
        rows = []
        for m, r in lg.items():
            per_min = r["wall_s"] / (r["audio_s"] / 60)
            first = first or per_min
            rows.append([f"{m} min", r["windows"], fmt(r["wall_s"], 1), fmt(per_min, 2), fmt(per_min / first, 2),
                         fmt(r["rtf"], 3), fmt(r["rss_after_load_mb"], 0), fmt(r["peak_rss_mb"], 0)])
        out += ["", f"### Whisper long recordings ({res['model']} probe, {res['long']['backend']}, fresh process each)", "",
                "RAVDESS clips concatenated with 0.2-0.8 s pauses into one WAV (temp dir); `Predictor.predict_files` "
                "streams it in windows of the saved window length, half-overlapping.", "",
                table(["recording", "windows", "wall s", "s per audio minute", "vs first (linear = 1.00)", "RTF",
                       "RSS after load MB", "peak RSS MB"], rows)]
    return "\n".join(out)
