"""Full fine-tuning of whisper-base on a GPU (issue 24, item 6): the first measurement of
end-to-end fine-tuning in this project, against the CPU recipe on the same speakers.

Protocol: the confirmation split of ``benchmarks/selection.py`` (train RAVDESS actors 01-10,
validate on 11-12, test 13-16, which no choice looked at), 8 classes. Each variant is
``configs/whisper-finetune.yaml`` through ``emovox.training.train.train`` (the Trainer path:
clips at their own length, augmentation drawn per (seed, epoch, clip) in the loader workers,
early stopping on validation UAR, best checkpoint kept), with every encoder layer trained
(``model.freeze_layers=0``, the convolutional front end too, except the partial row). The
variant to report is the one with the best *validation* UAR; every row's test UAR is shown.
The variants train side by side, one process each, on the one GPU (bf16 autocast); a time
budget callback stops a run that would outlast the device lease (the best checkpoint so far is
scored). Test clips are scored on the GPU through the run dir's model (fp32).

The device machine reaches no registry and the lease carries at most 64 MiB a call, so the run
takes two calls, the second made while the machine is still warm (it keeps /tmp between calls):

1. carry ``.gpu/enc``, ``.gpu/smoke``, ``.whl`` (the wheels the device lacks: audiomentations 0.43.1, librosa,
   numpy-minmax, numpy-rms, python-stretch, soxr, soundfile, cffi, pycparser, audioread, pooch, platformdirs,
   decorator; ``pip download --python-version 3.12 --only-binary=:all: --no-deps -d .whl ...``)::

     python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
     export PYTHONPATH=/tmp/site:src HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
     python3 -m benchmarks.gpu_finetune device-stage && python3 -m benchmarks.gpu_finetune smoke

2. carry ``.gpu/data`` and ``.whl``; the same two first lines, then
   ``python3 -m benchmarks.gpu_finetune run [--seeds 1,2] [--group heads|refit|next]``; results land in ``$OUT/gpu_run*.json``.

Here, ``python -m benchmarks.gpu_finetune stage`` writes the git-ignored transport folders
(``.gpu/enc``: whisper-base's encoder weights in float16, exact since the registry package is
float16; ``.gpu/smoke``: actors 01-03; ``.gpu/data``: actors 01-16) from ``models/whisper-base``
and ``EMOVOX_TEST_DATA``; delete ``.gpu`` afterwards (audio never enters the repository).
``python -m benchmarks.gpu_finetune render RESULT.json...`` prints the RESULTS.md section (seeds pooled).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".gpu"
DEVICE_MODEL = Path("/tmp/emovox-gpu/whisper-base")
CONFIG = ROOT / "configs" / "whisper-finetune.yaml"
SECTION_TITLE = "## Full fine-tuning of whisper-base on a GPU (RAVDESS: trained on 01-10, validated on 11-12, tested on 13-16)"
CPU_RECIPE = {  # configs/ravdess-whisper.yaml (two channel copies) on this very manifest: benchmarks/selection.py's
    # confirmation, session 14 (RESULTS.md "Model selection"); 0.723 through the commands' split ("Channel copies")
    "recipe": "configs/ravdess-whisper.yaml (frozen probe, 2 CPU cores; refitted on 01-12)", "test_uar": 0.715,
}
EGEMAPS_CONFIRM = 0.469
COMMON = ["model.freeze_layers=0", "model.freeze_feature_encoder=false", "training.eval_strategy=epoch",
          "training.max_steps=-1", "training.num_train_epochs=15", "training.early_stopping_patience=4",
          "training.class_weighted_loss=true", "training.save_total_limit=1", "training.logging_steps=25",
          "training.dataloader_num_workers=3", "training.warmup_ratio=0.05", "training.weight_decay=0.01",
          "augment.enabled=true"]
VARIANTS = {
    # the reference recipe's levers: batch 4, one learning rate 1e-5, noise/pitch/stretch at p=0.5
    "full-b4-lr1e-5": ["training.per_device_train_batch_size=4", "training.learning_rate=1e-5",
                       "training.head_learning_rate="],
    "full-b8-lr3e-5": ["training.per_device_train_batch_size=8", "training.learning_rate=3e-5",
                       "training.head_learning_rate=1e-3"],
    "full-b8-lr3e-5-noaug": ["training.per_device_train_batch_size=8", "training.learning_rate=3e-5",
                             "training.head_learning_rate=1e-3", "augment.enabled=false"],
    # the shipped configs/whisper-finetune.yaml (top 2 layers + head), with augmentation and epochs
    "top2-b8-lr5e-5": ["training.per_device_train_batch_size=8", "training.learning_rate=5e-5",
                       "training.head_learning_rate=1e-3", "model.freeze_layers=4",
                       "model.freeze_feature_encoder=true"],
}
# heads like the probe's, trained end to end (a later run, seeds 0 and 1)
HEADS = {
    "full-stats-b8-lr3e-5": [*VARIANTS["full-b8-lr3e-5"], "model.pooling=stats"],
    "full-lw-b8-lr3e-5": [*VARIANTS["full-b8-lr3e-5"], "model.layer_weighting=true"],
}
# refit (as the CPU probe does): train on 01-12 for the chosen variant's median best epoch on validation
# (9, 9, 7 over its three seeds), no early stopping; the validation rows are training rows then, so the
# checkpoint kept is the last (lowest loss), and the validation column means nothing
REFIT = {"refit-full-b8-lr3e-5": [*VARIANTS["full-b8-lr3e-5"], "training.num_train_epochs=9",
                                  "training.early_stopping_patience=0", "training.metric_for_best_model=eval_loss"]}
# not run yet: for the next session lent a GPU (the stats head ran to the 15-epoch cap on both seeds)
NEXT = {
    "full-stats-b8-lr3e-5-30ep": [*HEADS["full-stats-b8-lr3e-5"], "training.num_train_epochs=30",
                                  "training.early_stopping_patience=6"],
    "full-stats-b8-lr1e-5-30ep": [*HEADS["full-stats-b8-lr3e-5"], "training.learning_rate=1e-5",
                                  "training.num_train_epochs=30", "training.early_stopping_patience=6"],
}
GROUPS = {"variants": VARIANTS, "heads": HEADS, "refit": REFIT, "next": NEXT}
ALL = {k: v for group in GROUPS.values() for k, v in group.items()}
SMOKE = ["training.max_steps=4", "training.eval_strategy=steps", "training.eval_steps=2",
         "training.dataloader_num_workers=2"]


def stage() -> None:
    """Write .gpu/enc (encoder weights, float16), .gpu/smoke and .gpu/data (RAVDESS FLACs)."""
    import torch
    from safetensors.torch import load_file, save_file

    from emovox.testing import test_data_dir

    src = ROOT / "models" / "whisper-base"
    enc = STAGE / "enc"
    enc.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in load_file(src / "model.safetensors").items() if k.startswith("model.encoder.")}
    assert all(torch.equal(v.half().float(), v) for v in weights.values()), "weights are not float16-exact"
    save_file({k: v.half().contiguous() for k, v in weights.items()}, enc / "model.safetensors")
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(src / name, enc / name)
    data = test_data_dir() / "ravdess16k"
    for folder, actors in (("smoke", (1, 2, 3)), ("data", range(1, 17))):
        for a in actors:
            shutil.copytree(data / f"Actor_{a:02d}", STAGE / folder / "ravdess16k" / f"Actor_{a:02d}", dirs_exist_ok=True)
    print(f"staged {STAGE}: " + ", ".join(f"{p.name} {sum(f.stat().st_size for f in p.rglob('*') if f.is_file()) / 2**20:.1f} MiB"
                                          for p in sorted(STAGE.iterdir())))


def device_stage() -> None:
    """On the device: the encoder weights back in float32, as models/whisper-base holds them."""
    from safetensors.torch import load_file, save_file

    DEVICE_MODEL.mkdir(parents=True, exist_ok=True)
    enc = STAGE / "enc"
    save_file({k: v.float().contiguous() for k, v in load_file(enc / "model.safetensors").items()},
              DEVICE_MODEL / "model.safetensors")
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(enc / name, DEVICE_MODEL / name)
    print(f"model staged at {DEVICE_MODEL}")


def refit_manifest(manifest: Path) -> Path:
    """The same split with the validation rows also in train (the refit's training set: 01-12)."""
    import pandas as pd

    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    df = pd.concat([df, df[df["split"] == "validation"].assign(split="train")], ignore_index=True)
    path = manifest.with_name(manifest.stem + "-refit.csv")
    df.to_csv(path, index=False)
    return path


def confirm_manifest(data_root: Path, work: Path, *, smoke: bool = False) -> Path:
    """The confirmation split of benchmarks/selection.py over the RAVDESS folders under data_root
    (smoke: actor 01 trains, 02 validates, 03 tests)."""
    os.environ["EMOVOX_TEST_DATA"] = str(data_root.resolve())
    os.environ["EMOVOX_BENCH_WORK"] = str(work)
    from benchmarks.selection import fold_manifest

    if smoke:
        return fold_manifest("ravdess", [3], [2], train_only=range(1, 4))
    return fold_manifest("ravdess", [13, 14, 15, 16], [11, 12], train_only=range(1, 13))


def time_budget(seconds: float):
    """A TrainerCallback that stops training once ``seconds`` have passed (checked every step); its
    ``hit`` says whether it did. The best checkpoint so far is then restored and scored as usual."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self):
            self.until, self.hit = time.time() + seconds, False

        def on_step_end(self, args, state, control, **kwargs):
            if time.time() > self.until:
                control.should_training_stop, control.should_evaluate, control.should_save = True, True, True
                self.hit = True
            return control

    return TimeBudget()


def score_test(run: Path, manifest: Path) -> dict:
    """Test-split metrics of a run dir's model on the GPU (fp32), as benchmarks/selection.py builds inputs."""
    import numpy as np
    import torch
    from sklearn.metrics import confusion_matrix, recall_score
    from torch.utils.data import DataLoader

    from emovox.config import load_config
    from emovox.data.dataset import AudioDataset, PadCollator
    from emovox.data.manifest import load_manifest
    from emovox.labels import LabelScheme
    from emovox.models.backbones import backbone_for
    from emovox.models.loading import load_model, load_trained

    meta = json.loads((run / "emovox.json").read_text())
    scheme = LabelScheme.from_dict(meta["scheme"])
    cfg = load_config(run / "config.yaml")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_trained(run).to(device).eval()
    _, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    family = backbone_for(model)
    part = load_manifest(manifest, split="test").reset_index(drop=True)
    ds = AudioDataset(part, scheme, lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                      input_name=family.input_name, seed=cfg.seed)
    loader = DataLoader(ds, batch_size=16, num_workers=2,
                        collate_fn=PadCollator(attention_mask=family.uses_attention_mask(fe), input_name=family.input_name))
    logits = []
    with torch.no_grad():
        for batch in loader:
            batch.pop("labels", None)
            logits.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu())
    pred = torch.cat(logits).argmax(-1).numpy()
    y = np.array([scheme.labels.index(v) for v in part["label"]])
    return {"test_uar": float(recall_score(y, pred, average="macro")), "test_accuracy": float((pred == y).mean()),
            "test_logits": torch.cat(logits).numpy().round(4).tolist(),  # for ensembles with other runs, later
            "test_n": int(len(y)), "labels": list(scheme.labels),
            "test_confusion": confusion_matrix(y, pred, labels=range(len(scheme))).tolist()}


def one(name: str, manifest: Path, out: Path, model: str, budget_s: float, smoke: bool) -> None:
    """Train one variant and score its test split; writes out/name.json."""
    import torch

    from emovox.training.train import train

    base, _, seed = name.partition("@s")
    overrides = [*COMMON, *ALL[base], *(SMOKE if smoke else []), *([f"training.seed={seed}"] if seed else [])]
    if torch.cuda.is_available():
        overrides.append("training.bf16=true")
    run = out / name
    budget = time_budget(budget_s)
    started = time.time()
    result = train(config=CONFIG, manifest=manifest, out=run, model=model, overrides=overrides, progress=False,
                   callbacks=[budget])
    train_s = time.time() - started
    record = {"variant": name, "overrides": ALL[base], "seed": int(seed or 0), "train_s": round(train_s, 1), "steps": result.steps,
              "best_checkpoint": Path(str(result.best_checkpoint)).name if result.best_checkpoint else None,
              "val_uar": float(result.metrics.get("eval_uar", float("nan"))), "epochs": result.metrics.get("epoch"),
              "stopped_by_time_budget": budget.hit,
              "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None}
    record.update(score_test(run, manifest))
    (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    print(f"{name}: val UAR {record['val_uar']:.3f}, test UAR {record['test_uar']:.3f}, {train_s:.0f} s, "
          f"{record['steps']} steps", flush=True)


def run_all(data_root: Path, out: Path, results: Path, *, smoke: bool, deadline_s: float, seeds=(0,),
            group: str = "variants") -> dict:
    """Prepare the split, train every variant side by side (one process each), gather the results."""
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    manifest = confirm_manifest(data_root, out / "work", smoke=smoke)
    if group == "refit":
        manifest = refit_manifest(manifest)
    procs = {}
    names = [v if s == 0 else f"{v}@s{s}" for s in seeds for v in GROUPS[group]]
    for name in names:
        log = open(out / f"{name}.log", "w")
        cmd = [sys.executable, "-m", "benchmarks.gpu_finetune", "one", name, str(manifest), str(out),
               "--model", str(DEVICE_MODEL if DEVICE_MODEL.exists() else ROOT / "models" / "whisper-base"),
               "--budget", str(max(30.0, deadline_s - 60 - (time.time() - started)))] + (["--smoke"] if smoke else [])
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)
    while any(p.poll() is None for p, _ in procs.values()) and time.time() - started < deadline_s:
        time.sleep(5)
    rows = []
    for name, (p, log) in procs.items():
        if p.poll() is None:
            p.kill()
        log.close()
        f = out / f"{name}.json"
        rows.append(json.loads(f.read_text()) if f.exists() else {"variant": name, "failed": f"exit {p.returncode}"})
    report = {"smoke": smoke, "date": time.strftime("%Y-%m-%d", time.gmtime()), "wall_s": round(time.time() - started, 1), "machine": machine(), "variants": rows,
              "cpu_recipe": CPU_RECIPE, "egemaps": EGEMAPS_CONFIRM, "chance": 1 / 8}
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=1))
    with open(results.with_suffix(".logs.txt"), "w") as f:
        for name in names:
            f.write(f"==== {name}\n" + "".join((out / f"{name}.log").read_text().splitlines(True)[-60:]))
    return report


def machine() -> dict:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"gpu": gpu, "cpus": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__}


def render(paths) -> str:
    """The RESULTS.md section from one or more run files (every seed of a variant pooled)."""
    import statistics

    from benchmarks.common import table

    reps = [json.loads(Path(p).read_text()) for p in paths]
    runs: dict[str, list[dict]] = {}
    for rep in reps:
        for r in rep["variants"]:
            runs.setdefault(r["variant"].partition("@s")[0], []).append(r)
    ok = {v: rs for v, rs in runs.items() if all("test_uar" in r for r in rs)}
    mean = lambda rs, k: statistics.mean(r[k] for r in rs)  # noqa: E731
    chosen = max((v for v in ok if v not in REFIT), key=lambda v: mean(ok[v], "val_uar"), default=None)
    seeds = lambda rs, k: "/".join(f"{r[k]:.3f}".lstrip("0") for r in sorted(rs, key=lambda r: r.get("seed", 0)))  # noqa: E731
    body = []
    for v, rs in runs.items():
        if v not in ok:
            body.append([v, "failed", "", "", "", "", ""])
            continue
        body.append([f"**{v}** (chosen on validation)" if v == chosen else v,
                     "— (trained on)" if v in REFIT else f"{mean(rs, 'val_uar'):.3f} ({seeds(rs, 'val_uar')})",
                     f"{mean(rs, 'test_uar'):.3f} ({seeds(rs, 'test_uar')})",
                     f"{mean(rs, 'epochs'):.1f}", f"{mean(rs, 'steps'):.0f}", f"{mean(rs, 'train_s'):.0f}",
                     f"{max(r['peak_gpu_mb'] for r in rs):,}"])
    rep = reps[0]
    cpu = CPU_RECIPE  # the number measured here, not the placeholder a device run stored
    body.append([cpu["recipe"], "—", f"{cpu['test_uar']:.3f}", "—", "—", "—", "—"])
    body.append(["eGeMAPS + logistic regression", "—", f"{rep['egemaps']:.3f}", "—", "—", "—", "—"])
    body.append(["chance", f"{rep['chance']:.3f}", f"{rep['chance']:.3f}", "—", "—", "—", "—"])
    m = rep["machine"]
    walls = ", ".join(f"{r['wall_s']:.0f} s" for r in reps)
    return "\n".join([SECTION_TITLE, "", table(
        ["variant", "validation UAR (11-12), mean over seeds", "test UAR (13-16)", "epochs", "steps", "train s",
         "peak GPU MB"], body), "",
        f"Run {rep.get('date', '2026-12-04')} on one {m['gpu']} ({m['cpus']} CPU cores; the device tool), torch {m['torch']}, transformers {m['transformers']}; the variants of "
        f"one seed set train side by side on the one GPU, bf16 autocast (whole runs: {walls}). "
        "`python -m benchmarks.gpu_finetune` (its docstring has the protocol; the raw results are in "
        "`benchmarks/device_results/`). Every variant is early-stopped on the validation actors 11-12 (patience 4 "
        "epochs, at most 15) and trains on actors 01-10 only; `refit-` rows train the chosen variant on 01-12 for "
        "its median best epoch (9), as the CPU recipe refits on 01-12 (its number: the same manifest through "
        "`benchmarks.selection`'s confirmation; 0.723 through the commands' own split, \"Channel copies\")."])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("stage", "device-stage", "smoke", "run", "one", "render"))
    ap.add_argument("args", nargs="*")
    ap.add_argument("--model", default=str(DEVICE_MODEL))
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--deadline", type=float, default=420.0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--group", choices=sorted(GROUPS), default="variants",
                    help="which variants (refit: trained on 01-12 for a fixed number of epochs)")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds, every variant once per seed")
    a = ap.parse_args(argv)
    out_dir = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "_work" / "gpu")
    if a.mode == "stage":
        stage()
    elif a.mode == "device-stage":
        device_stage()
    elif a.mode in ("smoke", "run"):
        smoke = a.mode == "smoke"
        seeds = [int(x) for x in a.seeds.split(",")]
        tag = a.mode + ("" if a.group == "variants" else f"-{a.group}") + ("" if seeds == [0] else "-seeds" + "-".join(map(str, seeds)))
        rep = run_all(STAGE / ("smoke" if smoke else "data"), Path("/tmp/emovox-gpu") / tag, out_dir / f"gpu_{tag}.json",
                      smoke=smoke, deadline_s=a.deadline, seeds=seeds, group=a.group)
        print(json.dumps(rep, indent=1)[:6000])
    elif a.mode == "one":
        name, manifest, out = a.args
        one(name, Path(manifest), Path(out), a.model, a.budget, a.smoke)
    else:
        print(render(a.args))


if __name__ == "__main__":
    main()
