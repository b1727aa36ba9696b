"""Inference throughput: ``transformers.pipeline`` once per file vs ``emovox predict`` (torch fp32,
ONNX fp32, ONNX int8), interleaved in one process; thread settings; int8 top-1 agreement on a
trained model."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks import fixtures
from benchmarks.common import (SAMPLE_RATE, Context, fmt, interleaved, median, ravdess_files, synthetic_corpus,
                               table, WORK, prepared)
from benchmarks.flops import FlopModel, flop_model


def file_sets(ctx: Context) -> dict[str, list[Path]]:
    """Deterministic subsets: RAVDESS (real speech, ~3.7 s) and the CREMA-D-like synthetic clips."""
    n = 8 if ctx.quick else 16
    sets: dict[str, list[Path]] = {}
    rav = ravdess_files()
    if rav:
        sets["RAVDESS"] = rav[:: max(1, len(rav) // n)][:n]
    syn = sorted(synthetic_corpus(16, log=ctx.log).glob("*.wav"))
    sets["CREMA-D-like"] = syn[:: max(1, len(syn) // n)][:n]
    return sets


def durations(files: list[Path]) -> np.ndarray:
    import soundfile as sf

    return np.array([sf.info(str(f)).duration for f in files])


def pipeline_pass(run_dir: Path, threads: int) -> Callable[[list[Path]], list]:
    """The baseline: ``pipeline("audio-classification", model=RUN)`` called once per file.

    This machine has no ffmpeg binary (the pipeline's decoder for paths), so each file is read
    with soundfile and handed over as ``{"raw", "sampling_rate"}`` -- decoding is timed too.
    """
    import soundfile as sf
    import torch
    from transformers import pipeline

    pipe = pipeline("audio-classification", model=str(run_dir), device=-1)

    def run(files: list[Path]) -> list:
        torch.set_num_threads(threads)
        out = []
        for f in files:
            wave, sr = sf.read(str(f), dtype="float32")
            out.append(pipe({"raw": wave, "sampling_rate": sr}))
        return out

    return run


def predictor_pass(run_dir: Path, backend: str, threads: int, **kwargs) -> Callable[[list[Path]], list]:
    """emovox: ``Predictor.predict_files`` over the whole list (``kwargs`` go to the Predictor)."""
    import torch

    from emovox.inference.predict import Predictor

    pred = Predictor.from_run_dir(run_dir, backend=backend, threads=threads, **kwargs)

    def run(files: list[Path]) -> list:
        torch.set_num_threads(threads)  # torch's thread count is process-wide; other variants change it
        return list(pred.predict_files(files))

    return run


def timed_pass(fn: Callable[[list[Path]], list], files: list[Path], audio_s: float) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    fn(files)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "files_per_s": len(files) / wall, "audio_per_s": audio_s / wall,
            "rtf": wall / audio_s}


def measure(variants: dict[str, Callable], files: list[Path], repeats: int, ctx: Context) -> dict[str, dict]:
    """Warm every variant up on two files, then time whole passes interleaved; medians."""
    audio_s = float(durations(files).sum())
    for fn in variants.values():
        fn(files[:2])
    raw = interleaved({k: (lambda fn=fn: timed_pass(fn, files, audio_s)) for k, fn in variants.items()},
                      repeats, log=ctx.log)
    out = {}
    for k, runs in raw.items():
        out[k] = {m: median([r[m] for r in runs]) for m in runs[0]}
        out[k]["best_audio_per_s"] = max(r["audio_per_s"] for r in runs)
        out[k]["runs"] = [round(r["audio_per_s"], 3) for r in runs]
    return {"files": len(files), "audio_s": audio_s, "variants": out}


def throughput(ctx: Context, sizes: tuple[str, ...]) -> dict:
    sets = file_sets(ctx)
    results: dict = {}
    for size in sizes:
        run = fixtures.random_run(size)
        fp32, int8 = fixtures.exported(run, int8=False, log=ctx.log), fixtures.exported(run, int8=True, log=ctx.log)
        int8_enc = fixtures.exported(run, int8=True, encoder=True, log=ctx.log)
        variants = {
            "pipeline": pipeline_pass(run, ctx.threads),
            "emovox torch fp32": predictor_pass(run, "torch", ctx.threads),
            "emovox ONNX fp32": predictor_pass(fp32, "onnx", ctx.threads),
            "emovox ONNX int8": predictor_pass(int8, "onnx", ctx.threads),
            "emovox ONNX int8 --int8-encoder": predictor_pass(int8_enc, "onnx", ctx.threads),
        }
        fm = flop_model(size)
        for name, files in sets.items():
            ctx.log(f"  inference {size} / {name}: {len(files)} files")
            r = measure(variants, files, ctx.reps(3), ctx)
            r["gflop_per_audio_s"] = sum(fm.flops(d) for d in durations(files)) / 1e9 / r["audio_s"]
            results[f"{size}|{name}"] = r
        results[f"{size}|export"] = {"fp32": fixtures.info(fp32), "int8": fixtures.info(int8)}
        del variants
    return results


def batching(ctx: Context) -> dict:
    """Tried: padded batches (lengths within 25%, ``max_pad=1.25``) instead of emovox's one clip
    per call -- small model, which takes an attention mask (base takes none and is never padded)."""
    run = fixtures.random_run("small")
    fp32 = fixtures.exported(run, int8=False)
    out = {}
    for name, files in file_sets(ctx).items():
        variants = {
            "pipeline": pipeline_pass(run, ctx.threads),
            "emovox torch fp32 (one clip per call)": predictor_pass(run, "torch", ctx.threads),
            "torch fp32, padded batches (max_pad=1.25)": predictor_pass(run, "torch", ctx.threads, max_pad=1.25),
            "emovox ONNX fp32 (one clip per call)": predictor_pass(fp32, "onnx", ctx.threads),
            "ONNX fp32, padded batches (max_pad=1.25)": predictor_pass(fp32, "onnx", ctx.threads, max_pad=1.25),
        }
        ctx.log(f"  batching (small / {name}, {len(files)} files)")
        out[name] = measure(variants, files, ctx.reps(3), ctx)
    return out


def thread_settings(ctx: Context) -> dict:
    """emovox's three paths at 1 and 2 threads (base, RAVDESS or synthetic clips)."""
    sets = file_sets(ctx)
    name, files = next(iter(sets.items()))
    files = files[: max(4, len(files) // 2)]
    run = fixtures.random_run("base")
    fp32, int8 = fixtures.exported(run, int8=False), fixtures.exported(run, int8=True)
    variants = {}
    for t in (1, 2):
        variants[f"torch fp32, {t} thread(s)"] = predictor_pass(run, "torch", t)
        variants[f"ONNX fp32, {t} thread(s)"] = predictor_pass(fp32, "onnx", t)
        variants[f"ONNX int8, {t} thread(s)"] = predictor_pass(int8, "onnx", t)
    ctx.log(f"  thread settings (base / {name}, {len(files)} files)")
    res = measure(variants, files, ctx.reps(2), ctx)
    res["set"] = name
    return res


def trained_model(ctx: Context) -> tuple[Path, Path]:
    """The trained model for agreement -- the demo's model: ``tiny``, configs/demo-tiny-random.yaml, 600 steps
    (60 in quick mode) on 16 synthetic speakers -- and its manifest."""
    manifest = prepared("crema-d", synthetic_corpus(16, log=ctx.log), "prep_synthetic16_6", scheme="crema-d-6")
    return fixtures.trained_run(manifest, size="tiny", steps=60 if ctx.quick else 600, log=ctx.log), manifest


def agreement(ctx: Context, extra: dict[str, Path] | None = None) -> dict:
    """Top-1 agreement with torch fp32 of the fp32 and int8 ONNX exports (and ``extra`` dirs) of
    the trained model, on clips it never saw: the held-out speakers of its manifest (validation
    and test) plus 4 more synthetic speakers generated with another seed."""
    import pandas as pd

    from emovox.inference.predict import Predictor

    run, manifest = trained_model(ctx)
    paths = {"torch": (run, "torch"), "ONNX fp32": (fixtures.exported(run, int8=False, log=ctx.log), "onnx"),
             "ONNX int8": (fixtures.exported(run, int8=True, log=ctx.log), "onnx"),
             "ONNX int8 --int8-encoder": (fixtures.exported(run, int8=True, encoder=True, log=ctx.log), "onnx"),
             **{k: (v, "onnx") for k, v in (extra or {}).items()}}
    df = pd.read_csv(manifest, keep_default_na=False)
    held_out = df[df["split"].isin(["test", "validation"])]
    files, truth = list(held_out["path"]), list(held_out["label"])
    if not ctx.quick:
        unseen = pd.read_csv(prepared("crema-d", synthetic_corpus(4, seed=1, log=ctx.log), "prep_synthetic4_seed1_6",
                                      scheme="crema-d-6"), keep_default_na=False)
        files, truth = files + list(unseen["path"]), truth + list(unseen["label"])
    else:
        files, truth = files[:60], truth[:60]
    probs, labels = {}, []
    for name, (d, backend) in paths.items():
        pred = Predictor.from_run_dir(d, backend=backend, threads=ctx.threads)
        labels = sorted(pred.scheme.labels)
        probs[name] = np.stack([np.asarray([t["score"] for t in sorted(r["top_k"], key=lambda t: t["label"])])
                                for r in pred.predict_files(files, top_k=100)])
    top = {k: v.argmax(1) for k, v in probs.items()}
    ranked = np.sort(probs["torch"], axis=1)
    margin = ranked[:, -1] - ranked[:, -2]  # torch's top-1 lead over the runner-up
    info = fixtures.info(run)
    return {
        "model": run.name.split("_")[2], "train_steps": info.get("steps"), "train": info, "n": len(files),
        "test_accuracy_torch": float(np.mean([labels[i] == t for i, t in zip(top["torch"], truth)])),
        "chance": 1 / len(labels), "mean_top1_score": float(probs["torch"].max(1).mean()),
        "margin_p05": float(np.quantile(margin, 0.05)),
        "paths": {k: {"top1_agreement": float(np.mean(top[k] == top["torch"])), "flips": int(np.sum(top[k] != top["torch"])),
                      "flip_margins": [round(float(x), 4) for x in margin[top[k] != top["torch"]]],
                      "max_prob_diff": float(np.abs(probs[k] - probs["torch"]).max()),
                      "mean_prob_diff": float(np.abs(probs[k] - probs["torch"]).mean())}
                  for k in probs if k != "torch"},
    }


def int8_variants(ctx: Context) -> dict:
    """Speed (base) and agreement (trained model) of the int8 exports emovox chose between."""
    from benchmarks.int8_variants import variant_dirs

    name, files = next(iter(file_sets(ctx).items()))
    run = fixtures.random_run("base")
    variants = {"pipeline": pipeline_pass(run, ctx.threads),
                "emovox ONNX fp32": predictor_pass(fixtures.exported(run, int8=False), "onnx", ctx.threads),
                "emovox ONNX int8 (default)": predictor_pass(fixtures.exported(run, int8=True), "onnx", ctx.threads),
                "emovox ONNX int8 --int8-encoder": predictor_pass(fixtures.exported(run, int8=True, encoder=True), "onnx",
                                                                  ctx.threads),
                **{k: predictor_pass(d, "onnx", ctx.threads) for k, d in variant_dirs(run, WORK).items()}}
    ctx.log(f"  int8 variants (base / {name}, {len(files)} files)")
    res = measure(variants, files, ctx.reps(3), ctx)
    res["set"] = name
    trained, _ = trained_model(ctx)
    res["agreement"] = agreement(ctx, variant_dirs(trained, WORK))
    return res


def run(ctx: Context) -> dict:
    sizes = ("small",) if ctx.quick else ("base", "small")
    res = {"throughput": throughput(ctx, sizes)}
    if ctx.extra:
        res["threads"] = thread_settings(ctx)
        res["batching"] = batching(ctx)
        res["int8_variants"] = int8_variants(ctx)
        res["agreement"] = res["int8_variants"]["agreement"]
    else:
        res["agreement"] = agreement(ctx)
    res["flop_model"] = flop_model("base").to_dict()
    return res


# --- report ------------------------------------------------------------------------------------

def _agree(a: dict, variant: str) -> str:
    p = a["paths"].get(variant.removeprefix("emovox ").removesuffix(" (default)"))
    return f"{100 * p['top1_agreement']:.2f}%" if p else "–"


def render(res: dict, machine: dict) -> str:
    peak = machine["cpu"]["peak_gflops"]
    fm = FlopModel.from_dict(res["flop_model"])
    out = ["## Inference throughput: `pipeline()` per file vs `emovox predict`", ""]
    out.append("Baseline: `transformers.pipeline(\"audio-classification\", model=RUN)` called once per file "
               "(files decoded with soundfile: no ffmpeg here). emovox: `Predictor.predict_files` over the list. "
               "Median of interleaved whole passes; ratio = emovox / pipeline audio-s/s. Random weights "
               "(speed does not depend on them). GFLOP/s = FLOPs counted with FlopCounterMode for each file's length / "
               "wall time (int8 rows: the same fp32-equivalent FLOPs); % of the nominal fp32 peak.")
    for key, r in res["throughput"].items():
        if key.endswith("|export"):
            continue
        size, name = key.split("|")
        base = r["variants"]["pipeline"]["audio_per_s"]
        rows = []
        for v, m in r["variants"].items():
            gflops = r.get("gflop_per_audio_s", fm.gflops_per_audio_s) * m["audio_per_s"]
            rows.append([v, fmt(m["files_per_s"]), fmt(m["audio_per_s"]), fmt(m["rtf"], 3),
                         fmt(m["audio_per_s"] / base) + "×",
                         fmt(gflops, 0) if gflops else "–", (fmt(100 * gflops / peak, 0) + "%") if gflops else "–",
                         " / ".join(fmt(x) for x in m["runs"])])
        out += ["", f"### {size} model, {name} ({r['files']} files, {r['audio_s']:.1f} s of audio, "
                    f"{fmt(r.get('gflop_per_audio_s'))} GFLOP per audio second)", "",
                table(["path", "files/s", "audio-s/s", "RTF", "vs pipeline", "GFLOP/s", "% fp32 peak", "runs (audio-s/s)"],
                      rows)]
    th = res.get("threads")
    if th:
        rows = [[v, fmt(m["audio_per_s"]), fmt(m["rtf"], 3), " / ".join(fmt(x) for x in m["runs"])]
                for v, m in th["variants"].items()]
        out += ["", f"### Thread settings (base, {th['set']}, {th['files']} files)", "",
                table(["emovox path", "audio-s/s", "RTF", "runs"], rows)]
    else:
        out += ["", "(Thread settings, padded batches and the int8 choices: `python -m benchmarks.run --only inference "
                "--extra`; not in the default run.)"]
    for name, r in res.get("batching", {}).items():
        pipe = r["variants"]["pipeline"]["audio_per_s"]
        rows = [[v, fmt(m["audio_per_s"]), f"{fmt(m['audio_per_s'] / pipe)}×", " / ".join(fmt(x) for x in m["runs"])]
                for v, m in r["variants"].items()]
        out += ["", f"### Tried: padded batches instead of one clip per call (small, {name}, {r['files']} files)", "",
                "emovox scores each clip in its own call (`max_pad=1.0`: only equal lengths share a batch, i.e. the "
                "windows of long files). Padded batches of lengths within 25% (`max_pad=1.25`, a "
                "`Predictor.from_run_dir` argument) for the small model, which takes an attention mask:", "",
                table(["path", "audio-s/s", "vs pipeline", "runs"], rows)]
    a = res["agreement"]
    tr = a.get("train", {})
    rows = [[k, f"{100 * v['top1_agreement']:.2f}%", v.get("flips", "–"),
             ", ".join(f"{x:.3f}" for x in v.get("flip_margins", [])) or "–", f"{v['max_prob_diff']:.2g}",
             f"{v['mean_prob_diff']:.2g}"] for k, v in a["paths"].items()]
    out += ["", "### int8 vs fp32 agreement (trained model)", "",
            f"The demo's model: `{a['model']}` trained {a['train_steps']} steps with `emovox train` "
            f"(configs/demo-tiny-random.yaml, crema-d-6) on 16 synthetic speakers; validation UAR {fmt(tr.get('val_uar'))}; "
            f"accuracy on the clips below {fmt(a['test_accuracy_torch'])} (chance {fmt(a['chance'])}); mean top-1 "
            f"probability {fmt(a['mean_top1_score'])}. {a['n']} clips it never saw (its held-out speakers plus 4 "
            "synthetic speakers of another seed), one clip per call; each path compared with "
            "`emovox predict --backend torch`.", "",
            f"5% of these clips have a top-1 lead under {a.get('margin_p05', float('nan')):.3f} (probability) "
            "in torch; flips happen among such near-ties.", "",
            table(["path", "top-1 agreement", "flips", "torch top-1 lead of flipped clips", "max abs Δprob",
                   "mean abs Δprob"], rows)]
    pr = res.get("int8_variants")
    if pr:
        base = pr["variants"]["emovox ONNX int8 (default)"]["audio_per_s"]
        f32 = pr["variants"]["emovox ONNX fp32"]["audio_per_s"]
        pipe = pr["variants"]["pipeline"]["audio_per_s"]
        rows = [[v, fmt(m["audio_per_s"]), f"{fmt(m['audio_per_s'] / pipe)}×", f"{fmt(m['audio_per_s'] / f32)}×",
                 f"{fmt(m['audio_per_s'] / base)}×", _agree(a, v), " / ".join(fmt(x) for x in m["runs"])]
                for v, m in pr["variants"].items()]
        out += ["", f"### int8 choices, measured (base, {pr['set']}, {pr['files']} files)", "",
                "`emovox export RUN --int8` quantises the transformer's MatMuls with 8-bit unsigned weights and one "
                "scale per output channel. `--int8-encoder` also exports the convolutional feature encoder as "
                "MatMuls (`src/emovox/matmul_encoder.py`, exact in fp32) so that it is quantised too -- ONNX Runtime "
                "has no fast int8 Conv -- with signed 7-bit weights (`QuantType.QInt8` + `reduce_range`, the faster "
                "u8s8 kernel, which would saturate AVX2's 16-bit sums with 8-bit weights). The other rows are the "
                "alternatives measured against them "
                "(`benchmarks/int8_variants.py`). Agreement: the trained model above.", "",
                table(["path", "audio-s/s", "vs pipeline", "vs ONNX fp32", "vs emovox int8", "top-1 agreement", "runs"],
                      rows)]
    return "\n".join(out)
