"""Ensembles as one model (``emovox ensemble``): accuracy on new speakers and cost per clip.

``python -m benchmarks.ensemble_bench [--work DIR] [--only PART]`` with, in ``DIR`` (default
``benchmarks/_work/ens``), what ``emovox`` commands made first:

- ``prep/manifest.csv``: ``emovox prepare --corpus ravdess ... --test-speakers 13,14,15,16``;
- ``run-whisper-base``, ``run-whisper-tiny.en``: ``emovox train --config configs/whisper-probe.yaml
  --manifest prep/manifest.csv --model M`` (actors 01-12: train + one validation speaker);
- ``egemaps``, ``egemaps-cv``: ``emovox baseline`` on that split, and ``--folds 3`` over actors 01-12.

Parts: ``accuracy`` (selection: 3 speaker folds over actors 01-12, the same folds as ``emovox cv
--folds 3``, both probes trained per fold and saved with ``emovox ensemble`` as one run dir;
confirmation: the probes trained on 01-12 and their ensemble, and the three base fold runs as one
ensemble, scored once on actors 13-16, which no choice looked at), ``emovo`` (a second check: 3
speaker folds over EMOVO's 6 actors), ``egemaps`` and ``cost`` (ms per clip of each member and of
the ensemble, torch and its one ONNX graph, one clip per call and batched, on 16 clips of actors
13-16, interleaved rounds).

Scores come from the encoders' cached features (``training/feature_cache.py``, as training uses
them): each member's head on them, then its temperature, gives what ``emovox predict RUN`` gives,
and the ensemble's probabilities are the members' averaged, then its own temperature, which
``tests/models/test_ensemble.py`` checks equals the ensemble run dir's output. So every clip is
encoded once per encoder, not once per member and evaluation.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import WORK, loadavg, load_result, save_result, table

SECTION_TITLE = "## Ensembles as one model (`emovox ensemble`, RAVDESS, whisper-tiny.en + whisper-base probes)"
MODELS = ("whisper-base", "whisper-tiny.en")
# `emovox cv --config configs/whisper-probe.yaml --folds 3 --model whisper-base` on the same 01-12 manifest, fold 1
CV_CHECK = {"date": "2026-12-04", "uar": 0.7695, "accuracy": 0.7792}
FOLDS = 3
CHANCE = 1 / 8
CONFIG = "configs/whisper-probe.yaml"


def _ensemble(runs: list[Path], out: Path, manifest: Path | None) -> Path:
    from emovox.training.ensemble_build import build_ensemble

    if not (out / "emovox.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        build_ensemble(runs=runs, out=out, manifest=manifest)
    return out


def features(manifest: Path, model_name: str, scheme: str = "ravdess-8"):
    """Frozen-encoder stats of every manifest row, as training caches them (missing clips encoded once)."""
    from emovox.config import load_config
    from emovox.data.dataset import AudioDataset
    from emovox.labels import get_scheme
    from emovox.models.backbones import backbone_for
    from emovox.models.loading import load_model
    from emovox.models.tuning import backbone_of
    from emovox.training.feature_cache import cached_features

    import pandas as pd

    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    cfg = load_config(CONFIG, [f"model.name={model_name}"])
    model, fe = load_model(model_name, get_scheme(scheme), cfg.model, seed=cfg.seed,
                           max_seconds=cfg.data.max_seconds)
    family = backbone_for(backbone_of(model))
    ds = AudioDataset(df, get_scheme(scheme), lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                      input_name=family.input_name, seed=cfg.seed)
    return cached_features(model, fe, ds, progress=True)


def member_probs(run: Path, x) -> np.ndarray:
    """A member's calibrated probabilities from cached features: its head on them, then its temperature
    (what ``emovox predict RUN`` gives on the clips, without re-encoding them)."""
    import torch

    from emovox.models.heads import pooled_logits
    from emovox.models.loading import load_trained
    from emovox.models.source import open_source

    with torch.no_grad():
        z = pooled_logits(load_trained(run), x).logits.double().numpy() / open_source(run).temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ensemble_probs(ens: Path, probs: list[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities from its members': the average, then the ensemble's temperature
    (``tests/models/test_ensemble.py`` checks this equals the ensemble run dir's output)."""
    t = float(json.loads((ens / "emovox.json").read_text())["temperature"])
    z = np.log(np.clip(np.mean(probs, axis=0), 1e-12, None)) / t
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _metrics(y: np.ndarray, p: np.ndarray, scheme: str = "ravdess-8") -> dict:
    from emovox.evaluation.metrics import classification_metrics
    from emovox.labels import get_scheme

    m = classification_metrics(y, p, get_scheme(scheme))
    return {k: float(m[k]) for k in ("uar", "ece", "loss", "accuracy")}


def _train(manifest: Path, out: Path, model_name: str) -> Path:
    from emovox.training.train import train

    if not (out / "emovox.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        train(config=CONFIG, manifest=manifest, out=out, model=model_name, progress=False)
    return out


def _fold_scores(df, root: Path, x: dict, y: np.ndarray, row: dict, scheme: str, on_ensemble=None) -> dict:
    """Per speaker fold of ``df`` (its folder under ``root``): each probe trained and scored on the
    fold's test clips, and their ensemble; ``on_ensemble`` sees each fold's ensemble run dir."""
    from emovox.data.manifest import save_manifest
    from emovox.data.splits import fold_manifests

    out: dict[str, list[dict]] = {"ensemble": [], **{m: [] for m in MODELS}}
    for k, fold in enumerate(fold_manifests(df, folds=FOLDS, seed=0), start=1):
        d = root / f"fold-{k}"
        d.mkdir(parents=True, exist_ok=True)
        fm = save_manifest(fold, d / "manifest.csv")
        rows = np.array([row[p] for p in fold.loc[fold["split"] == "test", "path"]])
        runs = {m: _train(fm, d / f"run-{m}", m) for m in MODELS}
        probs = {m: member_probs(runs[m], x[m][rows]) for m in MODELS}
        for m in MODELS:
            out[m].append(_metrics(y[rows], probs[m], scheme))
        ens = _ensemble([runs[m] for m in MODELS], d / "ens", fm)
        if on_ensemble:
            on_ensemble(ens)
        out["ensemble"].append(_metrics(y[rows], ensemble_probs(ens, [probs[m] for m in MODELS]), scheme))
    return out


def accuracy(work: Path) -> dict:
    """Selection on 3 speaker folds over 01-12, confirmation on 13-16, from cached encoder features."""
    import pandas as pd

    from emovox.labels import get_scheme

    prep = work / "prep" / "manifest.csv"
    df = pd.read_csv(prep, dtype=str, keep_default_na=False)
    labels = get_scheme("ravdess-8").labels
    y = np.array([labels.index(v) for v in df["label"]])
    row = {p: i for i, p in enumerate(df["path"])}
    x = {m: features(prep, m) for m in MODELS}
    dev = df[df["speaker"].astype(int) <= 12]
    fits: list[dict] = []
    sel = _fold_scores(dev, work / "sel", x, y, row, "ravdess-8",
                       on_ensemble=lambda ens: fits.append(json.loads((ens / "emovox.json").read_text())["temperature_fit"]))
    test = np.array([row[p] for p in df.loc[df["split"] == "test", "path"]])
    runs = {m: work / f"run-{m}" for m in MODELS}
    probs = {m: member_probs(runs[m], x[m][test]) for m in MODELS}
    conf = {m: _metrics(y[test], probs[m]) for m in MODELS}
    enc = _ensemble(list(runs.values()), work / "confirm" / "ens-encoders", prep)
    conf["ensemble"] = _metrics(y[test], ensemble_probs(enc, list(probs.values())))
    fold_runs = [work / "sel" / f"fold-{k}" / f"run-{MODELS[0]}" for k in range(1, FOLDS + 1)]
    folds = _ensemble(fold_runs, work / "confirm" / "ens-folds", None)
    conf["folds"] = _metrics(y[test], ensemble_probs(folds, [member_probs(r, x[MODELS[0]][test]) for r in fold_runs]))
    return {"selection": {"folds": sel, "fits": fits},
            "confirmation": {"scores": conf, "fit": json.loads((enc / "emovox.json").read_text())["temperature_fit"]}}


def emovo(work: Path, root: Path = Path("/work/shared/data/emovo16k")) -> dict:
    """Second check on EMOVO (Italian, 6 actors): 3 speaker folds, both probes and their ensemble per fold."""
    import pandas as pd

    from emovox.data.prepare import prepare

    d = work / "emovo"
    manifest = d / "prep" / "manifest.csv"
    if not manifest.is_file():
        prepare(corpus="emovo", root=root, out=d / "prep", workers=1)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    scheme = json.loads((d / "prep" / "manifest.scheme.json").read_text())["scheme"]["name"]
    from emovox.labels import get_scheme

    labels = get_scheme(scheme).labels
    y = np.array([labels.index(v) for v in df["label"]])
    row = {p: i for i, p in enumerate(df["path"])}
    x = {m: features(manifest, m, scheme) for m in MODELS}
    out = _fold_scores(df, d, x, y, row, scheme)
    result = {"folds": out, "classes": len(labels)}
    egemaps_cv = d / "egemaps-cv" / "cv_metrics.json"  # `emovox baseline --folds 3` on the same manifest
    if egemaps_cv.is_file():
        cv = json.loads(egemaps_cv.read_text())
        result["egemaps"] = {"mean": cv["mean"]["uar"], "std": cv["std"]["uar"]}
    return result


def egemaps(work: Path) -> dict:
    """The eGeMAPS baseline (``emovox baseline``) on the same test split and the same folds."""
    cv = json.loads((work / "egemaps-cv" / "cv_metrics.json").read_text())
    return {"confirm": float(json.loads((work / "egemaps" / "metrics.json").read_text())["uar"]),
            "cv_mean": cv["mean"]["uar"], "cv_std": cv["std"]["uar"]}


def cost(work: Path, *, n: int = 16, rounds: int = 3, threads: int = 1) -> dict:
    """ms per clip, one clip per call and batched, for each member and the encoder ensemble."""
    import pandas as pd
    import torch

    from benchmarks.common import interleaved
    from emovox.data.audio import load_audio
    from emovox.inference.predict import Predictor

    torch.set_num_threads(threads)
    df = pd.read_csv(work / "prep" / "manifest.csv", dtype=str, keep_default_na=False)
    paths = list(df[df["split"] == "test"]["path"])[::15][:n]
    waves = [load_audio(p) for p in paths]
    from emovox.inference.export import export_onnx

    refs = {**{m: work / f"run-{m}" for m in MODELS}, "ensemble": work / "confirm" / "ens-encoders"}
    onnx_dir = work / "confirm" / "ens-encoders-onnx"
    parity = (load_result("ensemble") or {}).get("cost", {}).get("onnx_parity")
    if parity is None or not (onnx_dir / "model.onnx").is_file():
        r = export_onnx(run_dir=refs["ensemble"], out=onnx_dir, check_inputs=waves[:4])
        parity = {"max_prob_diff": r.max_prob_diff, "top1": r.top1_agreement, "n": r.n_checked}
    one = {k: Predictor.from_run_dir(r, threads=threads) for k, r in refs.items()}
    batched = {k: Predictor.from_run_dir(r, threads=threads, max_pad=4.0) for k, r in refs.items()}
    one["ensemble onnx"] = Predictor.from_run_dir(onnx_dir, backend="onnx", threads=threads)
    batched["ensemble onnx"] = Predictor.from_run_dir(onnx_dir, backend="onnx", threads=threads, max_pad=4.0)
    for p in (*one.values(), *batched.values()):
        p.probs(waves[:2])  # warm up

    def clock(fn):  # wall and CPU time: on a shared machine the CPU time is the steadier measure of cost
        t, c = time.perf_counter(), time.process_time()
        fn()
        return {"wall": 1000 * (time.perf_counter() - t) / len(waves), "cpu": 1000 * (time.process_time() - c) / len(waves)}

    variants = {}
    for k in one:
        variants[f"{k} one"] = (lambda p=one[k]: clock(lambda: [p.probs([w]) for w in waves]))
        variants[f"{k} batched"] = (lambda p=batched[k]: clock(lambda: p.probs(waves)))
    before = loadavg()
    runs = interleaved(variants, rounds)
    seconds = float(np.mean([len(w) for w in waves]) / 16000)
    return {"ms": {k: float(np.median([x["wall"] for x in v])) for k, v in runs.items()},
            "cpu_ms": {k: float(np.median([x["cpu"] for x in v])) for k, v in runs.items()},
            "clips": len(waves), "mean_seconds": seconds, "rounds": rounds,
            "threads": threads, "load": [before, loadavg()],
            "onnx_parity": parity}


def _mean(rows: list[dict], key: str) -> str:
    v = [r[key] for r in rows if key in r]
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if v else "–"  # sample std, as `emovox cv` reports


def render(r: dict) -> str:
    sel, conf, c = r["selection"], r["confirmation"]["scores"], r["cost"]
    f = sel["folds"]
    names = [("ensemble", "ensemble: tiny.en + base (one run dir)"), ("whisper-base", "whisper-base probe"),
             ("whisper-tiny.en", "whisper-tiny.en probe")]
    acc_rows = [[label, _mean(f[k], "uar"), _mean(f[k], "ece"), f"{conf[k]['uar']:.3f}", f"{conf[k]['ece']:.3f}"]
                for k, label in names]
    acc_rows += [["ensemble: the 3 base fold runs (8 actors each)", "–", "–", f"{conf['folds']['uar']:.3f}",
                  f"{conf['folds']['ece']:.3f}"],
                 ["eGeMAPS + logistic regression", f"{r['egemaps']['cv_mean']:.3f} ± {r['egemaps']['cv_std']:.3f}",
                  "–", f"{r['egemaps']['confirm']:.3f}", "–"],
                 ["chance", f"{CHANCE:.3f}", "–", f"{CHANCE:.3f}", "–"]]
    if "emovo" in r:
        e = r["emovo"]["folds"]
        eg = r["emovo"].get("egemaps")
        acc_rows.append([f"second check, EMOVO (3 speaker folds over 6 actors, 7 classes, chance "
                         f"{1 / r['emovo']['classes']:.3f}): ensemble / base / tiny.en / eGeMAPS", "–", "–",
                         " / ".join([*(_mean(e[k], "uar") for k in ("ensemble", *MODELS)),
                                     f"{eg['mean']:.3f} ± {eg['std']:.3f}" if eg else "–"]),
                         " / ".join(_mean(e[k], "ece") for k in ("ensemble", *MODELS))])
    ms, cpu = c["ms"], c["cpu_ms"]
    cost_rows = [[k, f"{cpu[k + ' one']:.0f}", f"{cpu[k + ' batched']:.0f}", f"{ms[k + ' one']:.0f}",
                  f"{ms[k + ' batched']:.0f}"] for k in (*MODELS, "ensemble", "ensemble onnx")]
    cost_rows.insert(2, ["sum of the two members", *(f"{sum(d[m + ' ' + w] for m in MODELS):.0f}"
                                                     for d in (cpu, ms) for w in ("one", "batched"))])
    per_fold = ", ".join(f"{x['uar']:.3f}" for x in f["ensemble"])
    fit = r["confirmation"]["fit"] or {}
    why = f"temperature not fitted: {fit['skipped']}" if "skipped" in fit else f"temperature {fit.get('temperature')}"
    return "\n".join([
        SECTION_TITLE, "",
        "`configs/whisper-probe.yaml` (frozen encoder, stats pooling, ridge head refit on train + validation) with "
        "`--model whisper-base` and `--model whisper-tiny.en`, saved as one run dir by `emovox ensemble`. Selection: "
        "3 speaker folds over RAVDESS actors 01-12 (the folds `emovox cv --folds 3` makes; ensemble per fold: "
        f"{per_fold}); confirmation: trained on 01-12, scored once on actors 13-16 (240 clips), "
        f"which no choice looked at. UAR of 8 classes; ECE (calibration error) beside it. Ensemble {why}. Scores "
        "come from the encoders' cached features (each member's head, then its temperature; the ensemble averages "
        "them, as its run dir does, tested to 1e-6): fold 1's whisper-base probe scores UAR "
        f"{f['whisper-base'][0]['uar']:.4f}, accuracy {f['whisper-base'][0]['accuracy']:.4f} this way; `emovox cv` "
        f"on the same fold (audio through the encoder; checked once, {CV_CHECK['date']}) reported "
        f"{CV_CHECK['uar']:.4f} and {CV_CHECK['accuracy']:.4f}.", "",
        table(["model", "selection UAR (01-12, 3 folds)", "selection ECE", "confirmation UAR (13-16)",
               "confirmation ECE"], acc_rows), "",
        "Ensemble minus the best single member (whisper-base): selection "
        f"{np.mean([x['uar'] for x in f['ensemble']]) - np.mean([x['uar'] for x in f['whisper-base']]):+.3f} UAR, "
        f"confirmation {conf['ensemble']['uar'] - conf['whisper-base']['uar']:+.3f}: the folds that choose show no "
        "gain, so the recipes stay single runs; the confirmation's difference is within what 4 speakers move.", "",
        f"Cost per clip (ms; {c['clips']} clips of actors 13-16, mean {c['mean_seconds']:.1f} s; torch unless "
        f"said, {c['threads']} thread(s), median of {c.get('rounds', 3)} interleaved rounds; `batched` = the "
        "predictor's length-sorted batches with up to 4x padding). Measured on the 2-core machine at load "
        f"{c['load'][0][0]:.0f} before and {c['load'][1][0]:.0f} after"
        + (" (other sessions' jobs): the process's CPU time per clip is the cost to read; wall time is inflated by "
           "the wait for a core." if max(c['load'][0][0], c['load'][1][0]) > 2.5 else
           ": quiet, so wall and CPU time agree for torch (the ONNX graph used more than one core's time per "
           "clip called one by one)."), "",
        table(["model", "CPU, one clip per call", "CPU, batched", "wall, one clip", "wall, batched"], cost_rows), "",
        f"`emovox export` of the ensemble: one ONNX graph (both encoders), parity with torch on {c['onnx_parity']['n']} "
        f"RAVDESS clips: max probability difference {c['onnx_parity']['max_prob_diff']:.1e}, top-1 agreement "
        f"{c['onnx_parity']['top1']:.0%}.", ""])


def splice(section: str) -> Path:
    from benchmarks.stress_bench import splice as put

    return put(section, title=SECTION_TITLE)


def _store(part: str, value: dict) -> dict:
    """Merge one part into the stored result (parts may run in separate processes)."""
    stored = load_result("ensemble") or {}
    stored.update({part: value} if part != "accuracy" else value)
    save_result("ensemble", stored)
    return stored


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ensemble_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=WORK / "ens")
    ap.add_argument("--only", choices=("accuracy", "emovo", "egemaps", "cost", "render"), default=None)
    args = ap.parse_args(argv)
    parts = {"accuracy": accuracy, "emovo": emovo, "egemaps": egemaps, "cost": cost}
    for part, fn in parts.items():
        if args.only == part or (args.only is None and part != "emovo"):
            _store(part, fn(args.work))
    stored = load_result("ensemble") or {}
    if all(k in stored for k in ("selection", "confirmation", "egemaps", "cost")):
        print(render(stored))
        print(f"wrote {splice(render(stored))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
