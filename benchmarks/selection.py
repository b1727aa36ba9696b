"""Honest model selection for ``configs/ravdess-whisper.yaml``: recipes are chosen on some
speakers and confirmed on others that took no part in choosing.

- selection: 3 speaker folds over RAVDESS actors 01-12 (4 test actors each; of the other 8, two
  validate and six train); the recipe with the best mean test UAR here is the one chosen;
- confirmation, run once per recipe after choosing: trained on 01-12 (01-10 train, 11-12
  validation), tested on actors 13-16, which no choice looked at;
- second check: EMOVO (Italian, 6 actors), 3 speaker folds (2 test, 1 validation, 3 train).

Every recipe is ``configs/ravdess-whisper.yaml`` plus overrides (``RECIPES``; on EMOVO the
scheme is the corpus's own). Test clips are scored through the run's head on the cached
encoder statistics (a tuned run: the cached lower-layer frames through its tuned upper layers),
which is what the run dir computes from the audio (tests/training/test_upper_tuning.py checks it
within 1e-4 on fp32 frames; the cache holds fp16). eGeMAPS (``emovox baseline``) and chance
on the same folds. ``python -m benchmarks.selection --stage select --recipes current,upper1``;
results accumulate in _work/selection/results.jsonl (a rerun skips what is there);
``--render`` prints the RESULTS.md section.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import WORK, loadavg, table

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ravdess-whisper.yaml"
OUT = WORK / "selection"
SECTION_TITLE = "## Model selection for configs/ravdess-whisper.yaml (chosen on actors 01-12, confirmed on 13-16 and EMOVO)"
UPPER = ["model.tune_upper_layers=1", "augment.feature_copies=0", "training.per_device_train_batch_size=16", "training.learning_rate=5e-5",
         "training.head_learning_rate=1e-4", "training.warmup_ratio=0.1", "training.num_train_epochs=4",
         "training.early_stopping_patience=2", "training.frame_time_mask=0.15", "training.frame_channel_mask=0.05",
         "training.weight_decay=0.01"]
RECIPES = {
    "current": [],
    "copies2": ["augment.feature_copies=2"],
    "upper1": UPPER,
    "upper1-2ep": [*UPPER, "training.num_train_epochs=2"],
    # validated every ~epoch (480 training clips / 16), early-stopped: more epochs, one or two layers
    "upper1-6ep": [*UPPER, "training.num_train_epochs=6", "training.eval_steps=30"],
    "upper2-6ep": [*UPPER, "model.tune_upper_layers=2", "training.num_train_epochs=6", "training.eval_steps=30"],
    "upper2-6ep-slow": [*UPPER, "model.tune_upper_layers=2", "training.num_train_epochs=6", "training.eval_steps=30",
                        "training.learning_rate=1e-5", "training.head_learning_rate=2e-5"],
    # silence trimmed before encoding (training and inference): no scoring margins needed in conversations,
    # a third less audio encoded there (benchmarks/NOTES.md, conversation speed)
    "trim35": ["model.trim_silence_db=35"],
    # configs/whisper-probe.yaml (any corpus: trimmed, no copies) as overrides of this config, and with the
    # augmented copy this recipe has (the lever for whisper-probe.yaml; EMOVO stands in for other languages)
    "probe": ["model.trim_silence_db=35", "augment.enabled=false", "augment.feature_copies=0", "augment.channel_copies=0"],
    "probe+copy": ["model.trim_silence_db=35", "augment.feature_copies=1", "augment.channel_copies=0"],
    # clips up to 10 s instead of 5 (EMOVO has clips to 14 s; RAVDESS none past 5 s)
    "probe+copy-10s": ["model.trim_silence_db=35", "augment.feature_copies=1", "augment.channel_copies=0",
                       "data.max_seconds=10"],
    # the input embeddings (Whisper's convolutional front end) left out of the probe, as configs/cross-corpus.yaml does
    "skip1": ["model.stats_skip_states=1"],  # shipped since session 15: "current" includes it
    "skip2": ["model.stats_skip_states=2"],
    "probe+copy-skip1": ["model.trim_silence_db=35", "augment.feature_copies=1", "augment.channel_copies=0",
                         "model.stats_skip_states=1"],
    # the any-corpus probe with the shipped recipe's two channel copies and the front end left out
    "probe+ch2-skip1": ["model.trim_silence_db=35", "augment.feature_copies=1", "model.stats_skip_states=1"],
    # the same with every state (session 16: channel copies won across corpora for cross-corpus.yaml)
    "probe+ch2": ["model.trim_silence_db=35", "augment.feature_copies=1", "model.stats_skip_states=0"],
}
RAVDESS_SELECT = [([1, 2, 3, 4], [5, 6]), ([5, 6, 7, 8], [9, 10]), ([9, 10, 11, 12], [1, 2])]
RAVDESS_CONFIRM = ([13, 14, 15, 16], [11, 12])
EMOVO_FOLDS = [(["f1", "m1"], ["f2"]), (["f2", "m2"], ["m3"]), (["f3", "m3"], ["m1"])]


def corpus_manifest(corpus: str) -> pd.DataFrame:
    from emovox.data.prepare import prepare
    from emovox.testing import test_data_dir

    where = WORK / f"sel-{corpus}"
    if not (where / "manifest.csv").exists():
        folder = {"ravdess": "ravdess16k", "emovo": "emovo16k"}[corpus]
        prepare(corpus=corpus, root=test_data_dir() / folder, out=where, scheme="ravdess-8" if corpus == "ravdess" else None)
    return pd.read_csv(where / "manifest.csv", dtype=str, keep_default_na=False)


def speaker_ids(df: pd.DataFrame, corpus: str, names) -> set[str]:
    if corpus == "ravdess":
        want = {int(n) for n in names}
        return {s for s in df["speaker"].unique() if int("".join(c for c in s if c.isdigit())) in want}
    return {s for s in df["speaker"].unique() if s.split("_")[-1].lower() in names or s.lower() in names}


def fold_manifest(corpus: str, test, val, *, train_only=None) -> Path:
    """A manifest with ``test`` speakers as test, ``val`` as validation, the rest (or ``train_only``) as train."""
    df = corpus_manifest(corpus)
    t, v = speaker_ids(df, corpus, test), speaker_ids(df, corpus, val)
    assert len(t) == len(test) and len(v) == len(val), (t, v)
    keep = df["speaker"].isin(t | v | speaker_ids(df, corpus, train_only)) if train_only else slice(None)
    df = df[keep].copy()
    df["split"] = ["test" if s in t else "validation" if s in v else "train" for s in df["speaker"]]
    path = OUT / "manifests" / f"{corpus}-{'-'.join(map(str, test))}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def score(run: Path, manifest: Path) -> float:
    """Test UAR of a run dir, through its head on cached statistics (see the module docstring)."""
    import torch
    from sklearn.metrics import recall_score

    from emovox.config import load_config
    from emovox.data.dataset import AudioDataset
    from emovox.labels import LabelScheme
    from emovox.models.backbones import backbone_for
    from emovox.models.heads import pooled_logits
    from emovox.models.loading import load_model, load_trained
    from emovox.training.features import clip_features
    from emovox.training.layer_cache import cached_lower, split_family
    from emovox.training.upper_tuning import all_stats

    meta = json.loads((run / "emovox.json").read_text())
    scheme = LabelScheme.from_dict(meta["scheme"])
    cfg = load_config(run / "config.yaml")
    part = pd.read_csv(manifest, dtype=str, keep_default_na=False).query("split == 'test'")
    tuned = load_trained(run)
    base, fe = load_model(cfg.model.name, scheme, cfg.model, seed=cfg.seed, max_seconds=cfg.data.max_seconds)
    if cfg.model.tune_upper_layers:
        family, k = split_family(base, int(cfg.model.tune_upper_layers))
        ds = AudioDataset(part, scheme, lambda w: family.featurize(fe, w), max_seconds=cfg.data.max_seconds,
                          input_name=family.input_name, seed=cfg.seed)
        stats = all_stats(tuned, cached_lower(base, fe, ds, k))
    else:
        stats = clip_features(base, fe, part, scheme, cfg, progress=False)
    with torch.no_grad():
        pred = pooled_logits(tuned, stats).logits.argmax(-1).numpy()
    y = np.array([scheme.labels.index(v) for v in part["label"]])
    assert backbone_for(tuned).family == backbone_for(base).family
    return float(recall_score(y, pred, average="macro"))


def egemaps(manifest: Path) -> float:
    """eGeMAPS + logistic regression on the fold (its features extracted once per corpus)."""
    import shutil

    from emovox.evaluation.baseline import run_baseline

    out = OUT / "egemaps" / manifest.stem
    shared = OUT / "egemaps" / f"{manifest.stem.split('-')[0]}-features.csv"
    if not (out / "metrics.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        if shared.exists():
            shutil.copy(shared, out / "features.csv")
        run_baseline(manifest=manifest, out=out)
        shutil.copy(out / "features.csv", shared)
    return float(json.loads((out / "metrics.json").read_text())["uar"])


def _done() -> list[dict]:
    path = OUT / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_one(recipe: str, stage: str, fold: int, manifest: Path, corpus: str) -> dict:
    from emovox.training.train import train

    if recipe == "egemaps":
        return {"uar": egemaps(manifest), "train_s": None}
    overrides = list(RECIPES[recipe]) + (["data.scheme=null"] if corpus == "emovo" else [])
    out = OUT / "runs" / f"{recipe}-{stage}-{fold}"
    t = time.time()
    train(config=str(CONFIG), manifest=manifest, out=out, model="whisper-base", overrides=overrides, progress=False)
    seconds = time.time() - t
    return {"uar": score(out, manifest), "train_s": round(seconds, 1)}


def folds(stage: str) -> list[tuple[str, Path]]:
    if stage == "select":
        return [("ravdess", fold_manifest("ravdess", t, v, train_only=range(1, 13))) for t, v in RAVDESS_SELECT]
    if stage == "confirm":
        return [("ravdess", fold_manifest("ravdess", *RAVDESS_CONFIRM))]
    return [("emovo", fold_manifest("emovo", t, v)) for t, v in EMOVO_FOLDS]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("select", "confirm", "emovo"), default="select")
    ap.add_argument("--recipes", default="current")
    ap.add_argument("--fold", type=int, default=None, help="only this fold (run folds side by side)")
    ap.add_argument("--render", action="store_true")
    args = ap.parse_args(argv)
    if args.render:
        print(render())
        return
    for recipe in args.recipes.split(","):
        for i, (corpus, manifest) in enumerate(folds(args.stage)):
            if args.fold is not None and i != args.fold:
                continue
            if any(r["recipe"] == recipe and r["stage"] == args.stage and r["fold"] == i for r in _done()):
                continue
            row = {"recipe": recipe, "stage": args.stage, "fold": i, **run_one(recipe, args.stage, i, manifest, corpus),
                   "load": [round(x, 2) for x in loadavg()]}
            print(json.dumps(row), flush=True)
            with (OUT / "results.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")


def render() -> str:
    rows = _done()
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    chance = {"select": 1 / 8, "confirm": 1 / 8, "emovo": 1 / 7}

    def cell(recipe, stage):
        xs = [r["uar"] for r in rows if r["recipe"] == recipe and r["stage"] == stage]
        if not xs:
            return "—"
        folds = "/".join(f"{x:.3f}".lstrip("0") for x in xs)
        return f"{np.mean(xs):.3f}" + (f" ± {np.std(xs, ddof=1):.3f} ({folds})" if len(xs) > 1 else "")

    def secs(recipe):
        xs = [r["train_s"] for r in rows if r["recipe"] == recipe and r.get("train_s")]
        return f"{np.median(xs):.0f}" if xs else "—"

    body = [[r, cell(r, "select"), cell(r, "confirm"), cell(r, "emovo"), secs(r)] for r in recipes]
    body.append(["chance", *(f"{chance[s]:.3f}" for s in ("select", "confirm", "emovo")), "—"])
    return "\n".join([SECTION_TITLE, "", table(["recipe", "selection UAR (3 folds, 01-12)", "confirmation UAR (13-16)",
                                                "EMOVO UAR (3 folds)", "train s incl. encoding what was not cached (median)"], body)])


if __name__ == "__main__":
    main()
