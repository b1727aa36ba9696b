"""Cross-corpus section: RAVDESS -> EMOVO and EMOVO -> RAVDESS on the four emotions both have
(neutral, happy, sad, angry), with configs/cross-corpus.yaml against configs/whisper-probe.yaml,
without adaptation, with ``emovox adapt`` on the target's unlabelled audio, and with per-speaker
adaptation (transductive); beside the in-corpus test split, the eGeMAPS baseline and chance.

The recipe was chosen on RAVDESS -> EMOVO (L2 16 vs 4, 64, 256; per-speaker standardisation in
training), and EMOVO -> RAVDESS confirms it. Scores come from the cached encoder features through
the run's own head (``models.heads.pooled_logits``: exactly what the full model computes); one cell
is also scored end to end with ``emovox adapt`` + ``emovox evaluate`` and must agree.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.common import WORK, Context, table

FOUR = "neutral,happy,sad,angry"
RECIPES = {"cross-corpus.yaml": "cross-corpus.yaml", "whisper-probe.yaml": "whisper-probe.yaml"}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _manifests() -> dict[str, Path]:
    from emovox.data.prepare import prepare
    from emovox.testing import test_data_dir

    base = test_data_dir()
    if base is None:
        raise RuntimeError("real speech (EMOVOX_TEST_DATA) is needed for the cross-corpus section")
    out = {}
    for corpus, folder in (("ravdess", "ravdess16k"), ("emovo", "emovo16k")):
        where = WORK / f"xc-{corpus}"
        if not (where / "manifest.csv").exists():
            prepare(corpus=corpus, root=base / folder, out=where, canonical=True, scheme=FOUR, unmapped="drop")
        out[corpus] = where / "manifest.csv"
    return out


def _uar(y, pred) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(y, pred, average="macro"))


def _scores(run: Path, target, source) -> dict[str, float]:
    """UAR on the target (plain, adapted, per-speaker adapted) and on the source's own test split."""
    import numpy as np
    import pandas as pd
    import torch

    from emovox.config import from_dict
    from emovox.labels import LabelScheme
    from emovox.models.heads import pooled_logits
    from emovox.models.loading import feature_extractor_for, load_trained
    from emovox.training.adapt import speaker_adapted_logits
    from emovox.training.feature_scaling import load_unscaled_head, refold
    from emovox.training.features import clip_features

    meta = json.loads((run / "emovox.json").read_text())
    cfg, scheme = from_dict(meta["config"]), LabelScheme.from_dict(meta["scheme"])
    model = load_trained(run)
    fe = feature_extractor_for(run, model.config)

    def feats(df):
        return clip_features(model, fe, df.assign(duration=cfg.data.max_seconds), scheme, cfg, progress=False)

    def predict(x):
        with torch.no_grad():
            return pooled_logits(model, x).logits.argmax(1).numpy()

    own = pd.read_csv(source).query("split == 'test'")
    out = {"in-corpus test": _uar([scheme.id(v) for v in own["label"]], predict(feats(own)))}
    df = pd.read_csv(target)
    x, y = feats(df), np.array([scheme.id(v) for v in df["label"]])
    out["cross-corpus"] = _uar(y, predict(x))
    unscaled = load_unscaled_head(run)
    refold(model, unscaled, x)
    out["+ adapt"] = _uar(y, predict(x))
    logits = speaker_adapted_logits(model, unscaled, x, df["speaker"].astype(str))
    out["+ speaker adapt (transductive)"] = _uar(y, logits.argmax(axis=1))
    return out


def _egemaps(source: Path, target: Path, name: str) -> dict[str, float]:
    """eGeMAPS + logistic regression trained on the source, tested on every target clip."""
    import pandas as pd

    from emovox.evaluation.baseline import run_baseline

    src, tgt = pd.read_csv(source, dtype=str), pd.read_csv(target, dtype=str)
    src.loc[src["split"] == "test", "split"] = "train"
    both = pd.concat([src, tgt.assign(split="test")], ignore_index=True)
    folder = WORK / f"xc-egemaps-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    both.to_csv(folder / "manifest.csv", index=False)
    return {label: float(run_baseline(manifest=folder / "manifest.csv", out=folder / label, split="test",
                                      speaker_norm=norm)["uar"])
            for label, norm in (("plain", False), ("speaker-norm", True))}


def _end_to_end(run: Path, target: Path, ctx: Context) -> float:
    """The adapted cell through the commands themselves (adapt, then evaluate)."""
    from emovox.evaluation.evaluate import evaluate
    from emovox.training.adapt import adapt

    out = WORK / "xc-adapted"
    shutil.rmtree(out, ignore_errors=True)
    adapt(run=run, targets=[target], out=out, progress=False)
    return float(evaluate(runs=[out], manifest=target, out=out / "eval", split="test")["uar"])


def run(ctx: Context) -> dict:
    import pandas as pd

    from emovox.training.train import train

    man = _manifests()
    rows = []
    for src, tgt in (("ravdess", "emovo"), ("emovo", "ravdess")):
        for recipe in RECIPES:
            run_dir = WORK / f"xc-run-{recipe.split('.')[0]}-{src}"
            shutil.rmtree(run_dir, ignore_errors=True)
            train(config=CONFIGS / recipe, manifest=man[src], out=run_dir, model="whisper-base", progress=False)
            target_all = WORK / f"xc-{tgt}" / "all-test.csv"
            pd.read_csv(man[tgt], dtype=str).assign(split="test").to_csv(target_all, index=False)
            scores = _scores(run_dir, target_all, man[src])
            ctx.log(f"   {src} -> {tgt}, {recipe}: {scores}")
            rows.append({"train": src, "test": tgt, "recipe": recipe, **scores})
            if recipe == "cross-corpus.yaml" and src == "ravdess":
                rows[-1]["+ adapt, via the commands"] = _end_to_end(run_dir, target_all, ctx)
    baseline = {f"{s}->{t}": _egemaps(man[s], WORK / f"xc-{t}" / "all-test.csv", f"{s}-{t}")
                for s, t in (("ravdess", "emovo"), ("emovo", "ravdess"))}
    return {"rows": rows, "egemaps": baseline, "chance": 0.25,
            "clips": {k: int(sum(1 for _ in open(v)) - 1) for k, v in man.items()}}


def render(result: dict) -> str:
    keys = ["in-corpus test", "cross-corpus", "+ adapt", "+ speaker adapt (transductive)"]
    rows = [[f"{r['train']} → {r['test']}", r["recipe"], *[f"{r[k]:.3f}" for k in keys]] for r in result["rows"]]
    for pair, b in result["egemaps"].items():
        rows.append([pair.replace("->", " → "), "eGeMAPS + logistic regression", "", f"{b['plain']:.3f}", "",
                     f"{b['speaker-norm']:.3f} (speaker norm)"])
    e2e = [r for r in result["rows"] if "+ adapt, via the commands" in r]
    lines = ["## Cross-corpus: RAVDESS ↔ EMOVO (4 shared emotions, whisper-base)", "",
             f"Clips: {', '.join(f'{k} {v}' for k, v in result['clips'].items())}; chance UAR {result['chance']:.2f}. "
             "Cross-corpus cells score every clip of the other corpus; in-corpus cells the source's own test "
             "speakers. The recipe (configs/cross-corpus.yaml: L2 16) was chosen on RAVDESS → EMOVO; EMOVO → RAVDESS "
             "confirms it. Per-speaker adaptation uses the test speakers' unlabelled clips (transductive).", "",
             table(["train → test", "recipe", *keys], rows)]
    if e2e:
        lines += ["", f"End to end (`emovox adapt` then `emovox evaluate`, RAVDESS → EMOVO, cross-corpus.yaml): UAR "
                      f"{e2e[0]['+ adapt, via the commands']:.3f} (the table's in-process value: {e2e[0]['+ adapt']:.3f})."]
    return "\n".join(lines)
