"""A layer budget for the Whisper recipe (``model.layer_budget``): speed against UAR on real RAVDESS.

``python -m benchmarks.layer_budget``:

1. **Choose** (actors 01-12 only): the cached whole-encoder statistics of every clip (whisper-base,
   as ``configs/ravdess-whisper.yaml`` loads it) give, per budget k = 1..6, the mean UAR of the
   recipe's ridge probe over 6 speaker-grouped folds (one male and one female actor held out each;
   clean clips only); k = the fewest layers within ``TOLERANCE`` of the best
   (``emovox.training.layer_budget.choose_budget``).
2. **Confirm** (actors 13-16, never looked at while choosing): the real recipe (``emovox train
   --config configs/ravdess-whisper.yaml``, augmented copy and refit included; validation actors
   11-12) trained on 01-12 with the whole encoder and with ``model.layer_budget=k``, each scored on
   13-16 (``emovox evaluate``).
3. **Speed**: both run dirs score the 240 clips of 13-16 with ``Predictor`` (torch) and after
   ``export_onnx`` (ONNX fp32), fresh ``Predictor`` each, the two alternating; layers executed counted.

Writes its section into RESULTS.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, WORK, fmt, prepared, ravdess_dir, save_result, table
from benchmarks.loadmon import LoadMonitor

SECTION_TITLE = "## Layer budget: fewer Whisper layers at inference (whisper-base, RAVDESS)"
CONFIG = ROOT.parent / "configs" / "ravdess-whisper.yaml"
TOLERANCE = 0.01


def manifest() -> Path:
    """RAVDESS actors 01-16: 01-10 train, 11-12 validation, 13-16 test."""
    df = pd.read_csv(prepared("ravdess", ravdess_dir(), "prep_ravdess"), dtype=str, keep_default_na=False)
    spk = df["speaker"].astype(int)
    df["split"] = np.where(spk >= 13, "test", np.where(spk >= 11, "validation", "train"))
    out = WORK / "layer_budget" / "manifest.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return out


def features(man: Path, budget: int | None = None) -> np.ndarray:
    """Cached statistics [N, 2, layers + 2, H] of every clean clip, from the recipe's encoder."""
    from emovox.config import load_config
    from emovox.data.dataset import AudioDataset
    from emovox.labels import get_scheme
    from emovox.models.backbones import backbone_for
    from emovox.models.loading import load_model
    from emovox.models.tuning import backbone_of
    from emovox.training.feature_cache import cached_features

    df = pd.read_csv(man, dtype=str, keep_default_na=False)
    cfg = load_config(CONFIG, [f"model.layer_budget={budget if budget else 'null'}"])
    scheme = get_scheme(cfg.data.scheme)
    model, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    family = backbone_for(backbone_of(model))
    ds = AudioDataset(df, scheme, lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                      input_name=family.input_name, seed=cfg.seed)
    return cached_features(model, fe, ds, progress=True).numpy()


def choose(man: Path) -> dict:
    from emovox.labels import get_scheme
    from emovox.training.layer_budget import choose_budget, ridge_uar

    from emovox.models.layer_budget import budget_features

    df = pd.read_csv(man, dtype=str, keep_default_na=False)
    scheme = get_scheme("ravdess-8")
    y = np.array([scheme.id(v) for v in df["label"]])
    spk = df["speaker"].astype(int).to_numpy()
    x = features(man)
    dev, test = spk <= 12, spk >= 13
    folds = [np.isin(spk[dev], [a, a + 1]) for a in range(1, 13, 2)]
    t = time.perf_counter()
    choice = choose_budget(x[dev], y[dev], folds, tolerance=TOLERANCE)
    seconds = time.perf_counter() - t
    n_layers = x.shape[2] - 2
    proxy_test = {k: ridge_uar(*(lambda f: (f[dev], y[dev], f[test], y[test]))(
        (x if k >= n_layers else budget_features(x, k)).reshape(len(y), -1)), len(scheme)) for k in choice.uar}
    return {"uar": choice.uar, "per_fold": choice.per_fold, "chosen": choice.chosen, "best": choice.best,
            "tolerance": TOLERANCE, "choose_s": seconds, "proxy_test": proxy_test, "n_layers": n_layers}


def train_and_score(man: Path, budget: int | None) -> dict:
    from emovox.evaluation.evaluate import evaluate
    from emovox.training.train import train

    out = WORK / "layer_budget" / f"run-k{budget or 'all'}"
    t = time.perf_counter()
    if not (out / "emovox.json").exists():
        train(config=CONFIG, manifest=man, out=out, progress=False,
              overrides=[f"model.layer_budget={budget if budget else 'null'}"])
    trained = time.perf_counter() - t
    m = evaluate(runs=[out], manifest=man, out=out / "eval-test", split="test")
    return {"run": str(out), "train_s": trained, "test_uar": float(m["uar"])}


def speed(man: Path, runs: dict[str, str], rounds: int = 2) -> dict:
    """Seconds to score the 240 test clips: torch and ONNX fp32, both run dirs alternating."""
    import torch

    from emovox.data.audio import load_audio
    from emovox.inference.export import export_onnx
    from emovox.inference.predict import Predictor
    from emovox.models.layer_budget import executed_layers

    df = pd.read_csv(man, dtype=str, keep_default_na=False)
    waves = [load_audio(p, max_seconds=5.0) for p in df[df["split"] == "test"]["path"]]
    onnx = {}
    for name, run in runs.items():
        target = Path(run).parent / f"{Path(run).name}-onnx"
        if not (target / "model.onnx").exists():
            export_onnx(run_dir=run, out=target)
        onnx[name] = str(target)
    out: dict = {name: {"torch": [], "onnx": []} for name in runs}
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            for backend, src in (("torch", runs[name]), ("onnx", onnx[name])):
                pred = Predictor.from_run_dir(src, backend=backend, threads=2)
                t = time.perf_counter()
                pred.probs(waves)
                out[name][backend].append(time.perf_counter() - t)
    from emovox.models.loading import load_trained

    for name, run in runs.items():
        model = load_trained(run)
        x = torch.zeros(1, 80, 300)
        out[name]["layers_run"] = executed_layers(model, lambda: model(input_features=x,
                                                                       attention_mask=torch.ones(1, 300)))
        out[name]["onnx_mb"] = round((Path(onnx[name]) / "model.onnx").stat().st_size / 2**20, 1)
    out["clips"], out["audio_s"] = len(waves), float(sum(len(w) for w in waves) / 16000)
    return out


def run(*, reuse: bool = False) -> dict:
    """``reuse``: take the selection stored by an earlier run (``_work/layer_budget/selection.json``)."""
    import json

    man = manifest()
    stored = WORK / "layer_budget" / "selection.json"
    with LoadMonitor() as mon_choose:
        sel = json.loads(stored.read_text()) if reuse and stored.exists() else choose(man)
    stored.write_text(json.dumps(sel, indent=1))
    sel["chosen"], sel["best"], sel["n_layers"] = int(sel["chosen"]), int(sel["best"]), int(sel["n_layers"])
    k = sel["chosen"]
    with LoadMonitor() as mon_train:
        confirm = {"all": train_and_score(man, None), f"k={k}": train_and_score(man, k if k < sel["n_layers"] else None)}
    with LoadMonitor() as mon_speed:
        sp = speed(man, {name: c["run"] for name, c in confirm.items()})
    return {"selection": sel, "confirm": confirm, "speed": sp,
            "load": {"choose": mon_choose.summary(), "train": mon_train.summary(), "speed": mon_speed.summary()}}


def render(r: dict) -> str:
    sel, conf, sp, load = r["selection"], r["confirm"], r["speed"], r["load"]
    k, n = sel["chosen"], sel["n_layers"]
    rows = [[str(b), f"{_get(sel['uar'], b):.3f}", f"{_get(sel['proxy_test'], b):.3f}",
             "**chosen**" if b == k else ("best" if b == sel["best"] else "")] for b in range(1, n + 1)]
    names = list(conf)
    srows = []
    for name in names:
        s = sp[name]
        srows.append([name, str(s["layers_run"]), f"{conf[name]['test_uar']:.3f}", fmt(min(s["torch"]), 2),
                      fmt(min(s["onnx"]), 2), fmt(s["onnx_mb"], 0), fmt(conf[name]["train_s"], 0)])
    full, cut = sp[names[0]], sp[names[1]]
    srows.append(["**whole / budget**", "", f"{conf[names[1]]['test_uar'] - conf[names[0]]['test_uar']:+.3f} UAR",
                  f"**{fmt(min(full['torch']) / min(cut['torch']))}×**", f"**{fmt(min(full['onnx']) / min(cut['onnx']))}×**",
                  "", ""])
    return "\n".join([
        SECTION_TITLE, "",
        "`model.layer_budget: k` loads the encoder with its first k layers only, so the run dir stores and runs k "
        "layers (torch, `predict`/`serve`/`evaluate`, and the ONNX export). **Choose** on actors 01-12 only: the "
        "recipe's ridge probe (stats of the layers read, standardised, class-balanced, L2 4 × N; clean clips, no "
        "augmented copy) on the cached whole-encoder features, 6 speaker-grouped folds (one male, one female actor "
        f"held out each); k = fewest layers within {sel['tolerance']:.2f} UAR of the best "
        f"({fmt(sel['choose_s'], 1)} s for all budgets, features already cached). For k < 6 the features are a proxy: "
        "layer k's raw state stands in for the truncated encoder's output, which Whisper's final layer norm "
        "changes. `proxy 13-16` = the same probe fitted on 01-12 and scored on 13-16, for reference only (not used "
        "to choose). Load while choosing: " + sel.get("load_note", _load(load["choose"])) + ".", "",
        table(["layers kept (k)", "selection UAR (01-12, 6 folds)", "proxy 13-16", ""], rows), "",
        "**Confirm** on actors 13-16, which took no part in the choice: the real recipe "
        "(`configs/ravdess-whisper.yaml`, one augmented copy, refit on train + validation; trained on 01-10, "
        f"validation 11-12) with the whole encoder and with `model.layer_budget={k}`, scored with `emovox evaluate`. "
        f"**Speed**: seconds to score the {sp['clips']} clips of 13-16 ({fmt(sp['audio_s'], 0)} s of audio) with "
        "`Predictor` (torch) and with the ONNX fp32 export, best of the alternating runs, 2 threads. "
        f"Load while timing: {_load(load['speed'])} (a shared 2-core machine: the times are pessimistic and noisy; "
        "the two run dirs alternate, so the ratio is what counts).", "",
        table(["run dir", "layers run", "UAR 13-16", "torch s", "ONNX s", "ONNX MB", "train s"], srows), ""])


def _get(d: dict, k: int):
    return d[k] if k in d else d[str(k)]


def _load(s: dict) -> str:
    return f"load average {s['mean_1m']} (max {s['max_1m']}), other processes' CPU {s['foreign_cores_mean']} cores on average"


def splice(section: str, results_md: Path = ROOT / "RESULTS.md") -> Path:
    from benchmarks.stress_bench import splice as put

    return put(section, results_md, title=SECTION_TITLE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.layer_budget", description=__doc__.splitlines()[0])
    ap.add_argument("--reuse-selection", action="store_true", help="take the stored choice of k (skip step 1)")
    args = ap.parse_args(argv)
    result = run(reuse=args.reuse_selection)
    save_result("layer-budget", {"result": result})
    print(render(result))
    print(f"wrote {splice(render(result))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
