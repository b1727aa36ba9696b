"""Acceptance run for hostile audio: a few hundred generated files through ``prepare --drop-invalid``
and ``predict``, each in its own process, with peak RSS and wall time.

    python -m benchmarks.hostile --n 300 --seed 7 [--hours 3] [--work /tmp/hostile]

Checks (exit 1 when one fails): no traceback; every file in exactly one of manifest.csv and
invalid.csv; peak RSS under 2 GB; predict gives one row per file, scores exactly the files
prepare accepted, and exits with 1.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from emovox.hostile import make_hostile_corpus

LIMIT_MB = 2048


def _run(args: list[str]) -> tuple[int, str, float, float]:
    """(exit code, stderr, seconds, peak RSS MB of this child) for ``emovox ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", *args], capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: only a new maximum is this child's own
    return proc.returncode, proc.stderr, time.time() - started, max(peak, before) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--hours", type=float, default=0.0, help="add one silent recording this long")
    ap.add_argument("--work", type=Path, default=Path("/tmp/emovox-hostile"))
    a = ap.parse_args(argv)
    corpus, prepared, model = a.work / "corpus", a.work / "prepared", a.work / "model"
    started = time.time()
    files = make_hostile_corpus(corpus, n=a.n, seed=a.seed, long_silence_hours=a.hours)
    generated = time.time() - started
    all_files = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    rc, err, t_prep, rss_prep = _run(["prepare", "--corpus", "folders", "--root", str(corpus), "--out",
                                      str(prepared), "--drop-invalid", "--workers", "2"])
    kept = set(pd.read_csv(prepared / "manifest.csv")["path"]) if (prepared / "manifest.csv").exists() else set()
    invalid = pd.read_csv(prepared / "invalid.csv") if (prepared / "invalid.csv").exists() else pd.DataFrame(
        columns=["path", "reason"])
    dropped = set(invalid["path"])
    subprocess.run([sys.executable, "-m", "emovox.cli", "init-model", "--size", "tiny", "--scheme", "calm,tense",
                    "--out", str(model)], check=True, capture_output=True)
    out = a.work / "predictions.jsonl"
    rc_pred, err_pred, t_pred, rss_pred = _run(["predict", str(model), str(corpus), "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    scored = {r["path"] for r in rows if "label" in r}
    checks = {
        "prepare exit 0": rc == 0,
        "no traceback": "Traceback" not in err + err_pred,
        "each file in exactly one list": kept.isdisjoint(dropped) and kept | dropped == set(all_files),
        "every dropped file has a reason": bool(invalid["reason"].astype(str).str.len().gt(0).all()),
        f"peak RSS < {LIMIT_MB} MB": max(rss_prep, rss_pred) < LIMIT_MB,
        "predict: one row per file": sorted(r["path"] for r in rows) == all_files,
        "predict scores exactly the accepted files": scored == kept,
        "predict exit 1": rc_pred == 1,
    }
    reasons = invalid["reason"].astype(str).str.replace(r"\d[\d.e+-]*", "N", regex=True).str.split("(").str[0]
    report = {"files": len(all_files), "generated_s": round(generated, 1), "accepted": len(kept),
              "invalid": len(dropped), "prepare_s": round(t_prep, 1), "prepare_peak_rss_mb": round(rss_prep),
              "predict_s": round(t_pred, 1), "predict_peak_rss_mb": round(rss_pred),
              "reasons": reasons.value_counts().head(15).to_dict(), "checks": checks}
    print(json.dumps(report, indent=2))
    if not all(checks.values()):
        print(err[-3000:] + err_pred[-3000:], file=sys.stderr)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
