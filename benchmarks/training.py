"""Training throughput and peak memory: the reference recipe done the plain way vs ``emovox train``.

Every measurement is a fresh child process (``benchmarks.train_child``) so its peak RSS is its
own; the two sides alternate (recipe, emovox, recipe, emovox, ...). Augmentation is off on both
sides for the speed comparison; layerdrop is 0 on both so every step does the same work.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import (Context, bench_manifest, fmt, interleaved, median, prepared, ravdess_dir, run_child,
                               synthetic_corpus, table)

ALL_LEVERS = {"dynamic": True, "group": True, "freeze": True, "cache": True, "workers": 2}
LEVER_ROWS = {  # name -> levers switched on in the plain recipe (the recipe itself comes from `compare`)
    "+ dynamic padding only": {"dynamic": True},
    "+ dynamic padding + length grouping": {"dynamic": True, "group": True},
    "+ frozen feature encoder only": {"freeze": True},
    "+ decoded-audio cache only": {"cache": True},
    "+ 2 loader workers only": {"workers": 2},
}


def manifests(ctx: Context) -> dict[str, tuple[Path, str]]:
    """Training manifests (all clips train, 8 validation) for the CREMA-D-like and RAVDESS corpora."""
    out = {}
    syn = prepared("crema-d", synthetic_corpus(16, log=ctx.log), "prep_synthetic16")
    out["CREMA-D-like"] = (bench_manifest(syn, "train_synthetic16"), "crema-d-21")
    if ravdess_dir() is not None:
        rav = prepared("ravdess", ravdess_dir(), "prep_ravdess")
        out["RAVDESS"] = (bench_manifest(rav, "train_ravdess"), "ravdess-8")
    return out


def _spec(ctx: Context, side: str, size: str, manifest: Path, scheme: str, *, steps: int, warmup: int = 2,
          **extra) -> dict:
    return {"side": side, "size": size, "manifest": str(manifest), "scheme": scheme, "batch": 4, "warmup": warmup,
            "steps": steps, "max_seconds": 5.0, "seed": ctx.seed, "threads": ctx.threads, **extra}


def child(spec: dict, ctx: Context) -> dict:
    """One child; ``command_wall_s`` = its wall time from spawn to exit, measured here."""
    tmp = tempfile.mkdtemp(prefix="emovox-bench-train-")
    try:
        t = time.perf_counter()
        out = run_child("benchmarks.train_child", {**spec, "tmp": tmp}, log=ctx.log)
        out["command_wall_s"] = round(time.perf_counter() - t, 2)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(runs: list[dict]) -> dict:
    keys = ("audio_per_s", "step_s_median", "peak_rss_mb", "peak_tree_pss_mb", "setup_s", "warmup_s", "audio_s",
            "padded_s")
    out = {k: median([r[k] for r in runs]) for k in keys}
    out["runs"] = [r["audio_per_s"] for r in runs]
    out["n"] = len(runs)
    return out


def compare(ctx: Context, size: str, data: str, manifest: Path, scheme: str, reps: int, steps: int) -> dict:
    ctx.log(f"  training {size} / {data}: recipe vs emovox, {reps} round(s) of {steps} steps")
    sides = {
        "recipe": lambda: child(_spec(ctx, "recipe", size, manifest, scheme, steps=steps), ctx),
        "emovox": lambda: child(_spec(ctx, "emovox", size, manifest, scheme, steps=steps,
                                      overrides=["augment.enabled=false"]), ctx),
    }
    raw = interleaved(sides, reps, log=ctx.log)
    return {k: summarize(v) for k, v in raw.items()}


AUG_STEPS, AUG_WARMUP = 24, 4  # the whole command: 24 optimizer steps; the loop: the 20 after 4 warm-up steps


def augmented(ctx: Context, manifest: Path, scheme: str, rounds: int, size: str = "base") -> dict:
    """The reference recipe *with its augmentations* (noise / pitch / stretch at p=0.5) on both sides,
    whole commands (train, evaluate on the validation clips, save) in fresh processes, alternating."""
    steps, warmup = (6, 2) if ctx.quick else (AUG_STEPS - AUG_WARMUP, AUG_WARMUP)
    ctx.log(f"  augmented training {size}: plain Trainer + audiomentations vs emovox, {rounds} round(s), "
            f"{warmup + steps} steps, whole commands")
    base = dict(whole=True, warmup=warmup)
    sides = {"recipe": lambda: child(_spec(ctx, "recipe", size, manifest, scheme, steps=steps, augment=True, **base), ctx),
             "emovox": lambda: child(_spec(ctx, "emovox", size, manifest, scheme, steps=steps,
                                           overrides=["augment.enabled=true"], **base), ctx)}
    raw = interleaved(sides, rounds, log=ctx.log)
    keys = ("command_wall_s", "wall_s", "cpu_s", "step_s_median", "audio_per_s", "setup_s", "warmup_s",
            "after_train_s", "peak_rss_mb", "audio_s")
    return {"size": size, "steps": steps, "warmup": warmup, "rounds": rounds,
            "sides": {k: {**{m: median([r[m] for r in v]) for m in keys}, "runs": v} for k, v in raw.items()}}


def augmented_ratios(aug: dict) -> dict[str, float]:
    """plain / emovox: loop (time of the timed steps), audio throughput, whole command."""
    p, e = aug["sides"]["recipe"], aug["sides"]["emovox"]
    return {"loop": p["wall_s"] / e["wall_s"], "audio": e["audio_per_s"] / p["audio_per_s"],
            "command": p["command_wall_s"] / e["command_wall_s"],
            "loop_cpu": p["cpu_s"] / e["cpu_s"] if p.get("cpu_s") and e.get("cpu_s") else None}


def augmented_targets(res: dict) -> list[list[str]]:
    aug = res.get("augmented")
    if not aug:
        return []
    r = augmented_ratios(aug)
    ok = lambda good: "met" if good else "**missed**"  # noqa: E731
    return [[f"training with augmentation ≥ 2.5× the plain Trainer with the same augmentation (loop; {aug['size']}, "
             f"CREMA-D-like, {aug['warmup'] + aug['steps']} steps)", f"{fmt(r['loop'])}×", ok(r["loop"] >= 2.5)],
            ["training with augmentation: whole command never slower than plain", f"{fmt(r['command'])}×",
             ok(r["command"] >= 1)]]


VARIANT_ROWS = {  # name -> (size, spec extras); compared with the emovox row of `compare` for that size
    "emovox, augmentation ON (noise/pitch/stretch p=0.5)": ("base", dict(overrides=["augment.enabled=true"])),
    "emovox + gradient checkpointing": ("base", dict(overrides=["augment.enabled=false"], gradient_checkpointing=True)),
    "emovox + 2 loader workers ": ("small", dict(overrides=["augment.enabled=false", "training.dataloader_num_workers=2"])),
    "emovox, augmentation ON ": ("small", dict(overrides=["augment.enabled=true"])),
    "emovox, augmentation ON, 2 loader workers": ("small", dict(overrides=["augment.enabled=true",
                                                                           "training.dataloader_num_workers=2"])),
}


def variants(ctx: Context, manifest: Path, scheme: str, steps: int, sizes: dict[str, str]) -> dict:
    """One run each of emovox with augmentation on, loader workers, gradient checkpointing."""
    out = {}
    for name, (size, extra) in VARIANT_ROWS.items():
        size = sizes.get(size, size)
        ctx.log(f"  training {size}: {name.strip()}")
        out[name] = {"size": size, **summarize([child(_spec(ctx, "emovox", size, manifest, scheme, steps=steps, **extra),
                                                     ctx)])}
    return out


def levers(ctx: Context, size: str, manifest: Path, scheme: str, steps: int) -> dict:
    """Each lever switched on alone in the plain recipe's code (one run each)."""
    out = {}
    for name, lev in LEVER_ROWS.items():
        ctx.log(f"  lever {size}: {name}")
        out[name] = summarize([child(_spec(ctx, "recipe", size, manifest, scheme, steps=steps, levers=lev), ctx)])
    return out


def compiled(ctx: Context, size: str, manifest: Path, scheme: str, steps: int) -> dict:
    """torch.compile (Trainer's ``torch_compile``) vs eager on both sides; 4 warm-up steps absorb
    the first compilation (later recompilations, one per new batch shape, land in the timed steps)."""
    out = {}
    for side, extra in (("recipe", {}), ("emovox", {"overrides": ["augment.enabled=false"]})):
        for mode in ("eager", "compiled"):
            ctx.log(f"  torch.compile {size}: {side}, {mode}")
            try:
                out[f"{side}, {mode}"] = summarize([child(_spec(ctx, side, size, manifest, scheme, steps=steps, warmup=4,
                                                                compile=mode == "compiled", **extra), ctx)])
            except Exception as exc:  # compilation failures are a result too
                out[f"{side}, {mode}"] = {"error": str(exc).splitlines()[-1][:300]}
            ctx.log(f"    {out[f'{side}, {mode}']}")
    return out


def run(ctx: Context) -> dict:
    ms = manifests(ctx)
    steps = 3 if ctx.quick else 6
    small = "tiny" if ctx.quick else "small"
    res: dict = {"steps": steps, "warmup": 2, "batch": 4, "compare": {}}
    plan = [(small, "CREMA-D-like", 1)] if ctx.quick else [("base", "CREMA-D-like", 2), (small, "CREMA-D-like", 1),
                                                           (small, "RAVDESS", 1)]
    for size, data, reps in plan:
        if data in ms:
            res["compare"][f"{size}|{data}"] = compare(ctx, size, data, *ms[data], ctx.reps(reps), steps)
    man, scheme = ms["CREMA-D-like"]
    res["augmented"] = augmented(ctx, man, scheme, ctx.reps(1), small if ctx.quick else "base")
    if not ctx.extra:
        return res
    res["levers"] = {"size": small, "steps": steps, "rows": levers(ctx, small, man, scheme, steps),
                     "compare_key": f"{small}|CREMA-D-like"}
    sizes = {"base": small, "small": small} if ctx.quick else {}
    res["variants"] = {"rows": variants(ctx, man, scheme, steps, sizes)}
    return res


def run_compile(ctx: Context) -> dict:
    """The ``compile`` section (not in the default run: compilation alone takes minutes here)."""
    man, scheme = manifests(ctx)["CREMA-D-like"]
    size = "tiny" if ctx.quick else "small"
    return {"size": size, "rows": compiled(ctx, size, man, scheme, 3 if ctx.quick else 6)}


# --- report ------------------------------------------------------------------------------------

def render(res: dict) -> str:
    out = ["## Training throughput and memory: reference recipe (plain) vs `emovox train`", ""]
    out.append(
        f"Batch {res['batch']} on both sides; {res['warmup']} warm-up steps, then {res['steps']} timed optimizer steps "
        "(medians over interleaved fresh processes). Throughput = real audio seconds (each clip up to 5 s; padding is "
        "not audio) per wall second. **Augmentation off on both sides** for the speed comparison (its cost is "
        "shown below); layerdrop 0 on both so each step does the same work. Recipe: `Wav2Vec2ForSequenceClassification`, "
        "a Dataset reading each clip with soundfile and padding/truncating to 5 s via the feature extractor "
        "(`padding=\"max_length\"`), HF `Trainer` defaults, feature encoder trainable, lr 1e-5, wd 0.01. emovox: "
        "`emovox.training.train.train()` with `configs/crema-d-21.yaml` (dynamic padding, length-grouped batches, frozen feature "
        "encoder, decoded-audio cache; 0 loader workers, the config default). Peak RSS = the training process's "
        "VmHWM; tree PSS = max over time of the summed PSS of the process and its loader workers.")
    rows = []
    for key, r in res["compare"].items():
        size, data = key.split("|")
        a, b = r["recipe"], r["emovox"]
        rows.append([size, data, fmt(a["audio_per_s"]), fmt(b["audio_per_s"]), f"**{fmt(b['audio_per_s'] / a['audio_per_s'])}×**",
                     fmt(a["step_s_median"]), fmt(b["step_s_median"]),
                     f"{fmt(a['padded_s'] / a['audio_s'])} / {fmt(b['padded_s'] / b['audio_s'])}",
                     f"{fmt(a['peak_rss_mb'], 0)} / {fmt(b['peak_rss_mb'], 0)}",
                     f"{fmt(b['setup_s'], 0)}",
                     f"{a['n']}: " + " / ".join(fmt(x) for x in a["runs"]) + " ; " + " / ".join(fmt(x) for x in b["runs"])])
    out += ["", table(["model", "clips", "recipe audio-s/s", "emovox audio-s/s", "ratio", "recipe s/step",
                       "emovox s/step", "padded/real (recipe / emovox)", "peak RSS MB (recipe / emovox)",
                       "emovox setup s (incl. decode cache)", "runs: recipe ; emovox"], rows)]
    if res.get("augmented"):
        out += ["", render_augmented(res["augmented"])]
    if "levers" not in res:
        out += ["", "(Levers one at a time, augmentation cost, loader workers and gradient checkpointing: "
                "`python -m benchmarks.run --only training --extra`; not in the default run.)"]
        return "\n".join(out)
    lev = res["levers"]
    cmp_ = res["compare"].get(lev.get("compare_key", ""), {})
    all_rows = {"plain recipe (baseline, from the table above)": cmp_.get("recipe"), **lev["rows"],
                "all levers = emovox (from the table above)": cmp_.get("emovox")}
    all_rows = {k: v for k, v in all_rows.items() if v}
    base = all_rows.get("plain recipe (baseline, from the table above)", next(iter(all_rows.values())))["audio_per_s"]
    rows = [[name, fmt(r["audio_per_s"]), f"{fmt(r['audio_per_s'] / base)}×", fmt(r["step_s_median"]),
             fmt(r["padded_s"] / r["audio_s"]), fmt(r["peak_rss_mb"], 0), fmt(r["peak_tree_pss_mb"], 0)]
            for name, r in all_rows.items()]
    out += ["", f"### Levers, one at a time ({lev['size']} model, CREMA-D-like clips, {lev['steps']} timed steps, one run each)",
            "", "Each lever switched on alone in the plain recipe's code (length grouping only matters with dynamic "
            "padding, so it is shown on top of it). Measured on `small` to fit the time budget: there the "
            "convolutional encoder is ~76% of the forward FLOPs (base: ~34%), so freezing it gains more than it "
            "would on base; padding levers scale the same on both.", "",
            table(["configuration", "audio-s/s", "vs recipe", "s/step", "padded/real", "peak RSS MB", "tree PSS MB"], rows)]
    var = res["variants"]
    rows = []
    for size in dict.fromkeys(r["size"] for r in var["rows"].values()):
        ref = res["compare"].get(f"{size}|CREMA-D-like", {}).get("emovox")
        mine = {k.strip(): r for k, r in var["rows"].items() if r["size"] == size}
        for name, r in [*([("emovox defaults (from the first table)", ref)] if ref else []), *mine.items()]:
            rows.append([size, name, fmt(r["audio_per_s"]), f"{fmt(r['audio_per_s'] / ref['audio_per_s'])}×" if ref else "–",
                         fmt(r["step_s_median"]), fmt(r["peak_rss_mb"], 0), fmt(r["peak_tree_pss_mb"], 0)])
    out += ["", "### Augmentation cost, loader workers, gradient checkpointing (CREMA-D-like, one run each)", "",
            table(["model", "configuration", "audio-s/s", "vs emovox defaults", "s/step", "peak RSS MB", "tree PSS MB"],
                  rows)]
    return "\n".join(out)


def render_augmented(aug: dict) -> str:
    rows = []
    for side, m in aug["sides"].items():
        rows.append([{"recipe": "plain Trainer", "emovox": "emovox"}[side], fmt(m["command_wall_s"], 0),
                     fmt(m["wall_s"], 1), fmt(m.get("cpu_s"), 1), fmt(m["wall_s"] / aug["steps"], 2),
                     fmt(m["audio_per_s"]), fmt(m["setup_s"], 0),
                     fmt(m["warmup_s"], 0), fmt(m["after_train_s"], 0), fmt(m["peak_rss_mb"], 0),
                     " / ".join(fmt(r["command_wall_s"], 0) for r in m["runs"])])
    r = augmented_ratios(aug)
    rows.append(["**plain / emovox**", f"**{fmt(r['command'])}×**", f"**{fmt(r['loop'])}×**",
                 f"**{fmt(r['loop_cpu'])}×**" if r["loop_cpu"] else "", "", f"**{fmt(r['audio'])}×**", "", "", "", "", ""])
    return "\n".join([
        f"### With the recipe's augmentations on both sides ({aug['size']} model, CREMA-D-like, whole commands)", "",
        "The reference recipe with its augmentations (`configs/crema-d-21.yaml`: Gaussian noise, pitch shift ±4 "
        "semitones, time stretch 0.8-1.25, each at p=0.5; audiomentations 0.43's transforms, pitch and stretch by its "
        "default `signalsmith_stretch` method) on both sides. Plain: the recipe above plus an `audiomentations.Compose` "
        "of those transforms in the Dataset's `__getitem__` (what a plain script does; the Trainer seeds the global "
        "RNGs it draws from). emovox: `emovox.training.train.train()`, whose augmenter draws the same parameters from "
        "generators of its own (seeded per seed, epoch and clip) and so prepares augmented clips ahead in its "
        "background thread. Whole command = spawn to exit of a fresh process: imports, model, decoding, "
        f"{aug['warmup'] + aug['steps']} optimizer steps, one evaluation on the 8 validation clips, saving; loop = "
        f"the {aug['steps']} steps after {aug['warmup']} warm-up steps (loop CPU s = the training process's CPU time, "
        "all threads, over those steps: less sensitive to other processes than wall time). "
        f"{aug['rounds']} round(s), sides alternating; medians."
        + (f" Load meanwhile: load average {aug['load']['mean_1m']} (max {aug['load']['max_1m']}), other processes' "
           f"CPU {aug['load']['foreign_cores_mean']} cores on average (2 cores in all)." if aug.get("load") else ""), "",
        table(["side", "command s", "loop s", "loop CPU s", "s/step", "audio-s/s", "setup s", "warm-up s", "after training s",
               "peak RSS MB", "runs (command s)"], rows)])


def render_compile(comp: dict) -> str:
    rows = []
    for side, r in comp["rows"].items():
        if "error" in r:
            rows.append([side, "failed: " + r["error"], "", ""])
        else:
            rows.append([side, fmt(r["audio_per_s"]), fmt(r["step_s_median"]), fmt(r["warmup_s"], 0), fmt(r["peak_rss_mb"], 0)])
    return "\n".join([
        f"### Tried: torch.compile ({comp['size']} model, CREMA-D-like, `torch_compile=True`, 4 warm-up steps)", "",
        "Not part of the default run (`--only compile`): compilation alone takes minutes on 2 cores. The recipe's "
        "batches all have one shape (5 s); emovox's change length every step, and each new length recompiles.", "",
        table(["side", "audio-s/s after warm-up", "s/step", "warm-up s (4 steps incl. compilation)", "peak RSS MB"], rows)])
