"""Training throughput and peak memory: the reference recipe done the plain way vs ``emovox train``.

Every measurement is a fresh child process (``benchmarks.train_child``) so its peak RSS is its
own; the two sides alternate (recipe, emovox, recipe, emovox, ...). Augmentation is off on both
sides for the speed comparison; layerdrop is 0 on both so every step does the same work.
"""
from __future__ import annotations

import shutil
import tempfile
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
    tmp = tempfile.mkdtemp(prefix="emovox-bench-train-")
    try:
        return run_child("benchmarks.train_child", {**spec, "tmp": tmp}, log=ctx.log)
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
