"""``make demo``: the whole pipeline on the built-in synthetic corpus, offline, in a few minutes.

synthetic corpus -> prepare -> a real pretrained encoder (Whisper tiny.en from a registry package,
imported once) -> train a head on its frozen, cached features -> evaluate on held-out speakers ->
predict. ``--config configs/demo-tiny-random.yaml`` runs the old demo (a tiny random wav2vec2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def run_demo(*, out: str | Path = "demo", speakers: int = 12, config: str | Path = DEFAULT_CONFIG,
             overrides: list[str] = ()) -> dict:
    """Run every stage into ``out`` and return the test metrics.

    Raises:
        EmovoxError: a stage failed on bad input (e.g. the registry encoder is not installed).
    """
    from .config import load_config
    from .data.synthetic import make_demo_corpus
    from .models.registry import REGISTRY
    from .evaluation.evaluate import evaluate
    from .inference.output import write_rows
    from .inference.predict import predict
    from .data.prepare import prepare
    from .training.train import train

    out = Path(out)
    t0 = time.time()
    step("1/5 synthetic corpus (not real speech: for the demo and tests only)")
    files = make_demo_corpus(out=out / "corpus", speakers=speakers, seed=0)
    print(f"    {len(files)} clips from {speakers} synthetic actors in {out / 'corpus'}")
    step("2/5 prepare: validate, speaker-independent splits, data report")
    prep = prepare(corpus="crema-d", root=out / "corpus", out=out / "prepared", scheme="crema-d-6")
    print(prep.report.read_text())
    name = load_config(config, overrides).model.name
    if name in REGISTRY:  # train resolves the registry name itself (converted once into the cache)
        step(f"3/5 {name}: a real pretrained encoder, frozen; a head trains on its cached features")
    else:
        step(f"3/5 train {name} on the train split, early-stopped on validation")
    if (out / "run").exists():
        import shutil

        shutil.rmtree(out / "run")
    res = train(config=config, manifest=prep.manifest, out=out / "run", overrides=list(overrides),
                progress=True)
    step("4/5 evaluate on held-out speakers")
    m = evaluate(runs=[out / "run"], manifest=prep.manifest, out=out / "eval", split="test")
    step("5/5 predict a few files")
    import pandas as pd

    test = pd.read_csv(prep.manifest)
    picks = list(test[test["split"] == "test"].groupby("label").head(1)["path"])
    write_rows(predict(runs=[out / "run"], inputs=picks), out=out / "predictions.jsonl", fmt="jsonl")
    for line in (out / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        print(f"    {Path(row['path']).name:28s} -> {row['label']} ({row['score']:.2f})")
    chance = 1 / len(m["per_class"])
    print(f"\nDone in {time.time() - t0:.0f} s ({res.steps} training steps).")
    print(f"Test UAR {m['uar']:.3f} vs chance {chance:.3f}; accuracy {m['accuracy']:.3f} vs majority baseline "
          f"{m['majority_accuracy']:.3f}  (held-out speakers, {m['n']} clips)")
    print(f"Report: {out / 'eval' / 'report.md'}  metrics: {out / 'eval' / 'metrics.json'}")
    return m


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    from .errors import EmovoxError

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="demo")
    p.add_argument("--speakers", type=int, default=12)
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)
    try:
        run_demo(out=a.out, speakers=a.speakers, config=a.config, overrides=a.overrides)
    except EmovoxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
