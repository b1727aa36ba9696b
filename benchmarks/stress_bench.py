"""Stress, groups and abstention on real speech: a RAVDESS-trained whisper-base run scored under
every stress condition, per gender and per speaker, with the accuracy-coverage trade-off.

``python -m benchmarks.stress_bench [--run RUN --manifest M]`` (or ``python -m benchmarks.run --only
stress``): prepares RAVDESS actors 01-16 with 13-16 as the test speakers (two male, two female),
trains ``configs/ravdess-whisper.yaml`` on the rest (unless ``--run`` names a trained run), then

- ``emovox stress`` on the test speakers, every default condition;
- the white-noise 10 dB condition made *outside* emovox (numpy noise, written as 16-bit WAV into
  the git-ignored work folder, never into the corpus) and scored with ``emovox evaluate``, to check
  the stress row against it;
- ``emovox evaluate --by gender --by speaker`` on the test speakers;
- ``--target-accuracy 0.8`` on the validation speaker and that threshold applied to the test speakers.

The section is stored like the others (``_work/results/stress.json``) and spliced into
``RESULTS.md`` in place (the rest of the file is left as it is).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, WORK, Context, fmt, load_result, loadavg, save_result, table

TEST_SPEAKERS = ("13", "14", "15", "16")
TARGET = 0.8
SECTION_TITLE = "## Stress, groups and abstention (whisper-base on RAVDESS actors 13-16)"


def _prepare(out: Path) -> Path:
    import emovox
    from emovox.testing import test_data_dir

    data = test_data_dir()
    if data is None:
        raise SystemExit("needs real speech: EMOVOX_TEST_DATA with ravdess16k/")
    return emovox.prepare(corpus="ravdess", root=data / "ravdess16k", out=out, test_speakers=list(TEST_SPEAKERS),
                          workers=1).manifest


def _train(manifest: Path, out: Path) -> Path:
    import emovox

    model = ROOT.parent / "models" / "whisper-base"
    emovox.train(config=ROOT.parent / "configs" / "ravdess-whisper.yaml", manifest=manifest, out=out,
                 model=str(model), progress=True)
    return out


def outside_white_noise(manifest: Path, out: Path, *, snr_db: float = 10.0, seed: int = 123) -> Path:
    """The test split with white noise at ``snr_db`` (whole-clip power) added by plain numpy and
    written as 16-bit WAV: a degradation made outside emovox, for comparison with its stress row."""
    import soundfile as sf

    df = pd.read_csv(manifest, dtype=str, keep_default_na=False).query("split == 'test'").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    paths = []
    for i, path in enumerate(df["path"]):
        x, sr = sf.read(path, dtype="float64")
        noise = rng.standard_normal(len(x))
        noise *= np.sqrt(np.mean(x ** 2) / (np.mean(noise ** 2) * 10 ** (snr_db / 10)))
        dest = out / "audio" / f"{i:04d}.wav"
        sf.write(dest, np.clip(x + noise, -1, 1), sr, subtype="PCM_16")
        paths.append(str(dest))
    df["path"] = paths
    df.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


def run(ctx: Context | None = None, *, run_dir: Path | None = None, manifest: Path | None = None,
        conditions: str | None = None) -> dict:
    import emovox

    work = WORK / "stress"
    t0 = time.time()
    print(f"stress bench: {(WORK / 'stress').resolve()}", flush=True)
    manifest = manifest or _prepare(work / "prepared")
    run_dir = run_dir or _train(manifest, work / "run")
    timings = {}
    t = time.time()
    stressed = emovox.stress(model=run_dir, manifest=manifest, out=work / "stress", conditions=conditions,
                             progress=True)
    timings["stress_s"] = time.time() - t
    outside = emovox.evaluate(runs=[run_dir], manifest=outside_white_noise(manifest, work / "outside"),
                              out=work / "outside-eval")
    groups = emovox.evaluate(runs=[run_dir], manifest=manifest, out=work / "eval-test", by=["gender", "speaker"])
    val = emovox.evaluate(runs=[run_dir], manifest=manifest, out=work / "eval-val", split="validation",
                          target_accuracy=TARGET)
    chosen = val["abstention"]["target"]
    preds = pd.read_csv(work / "eval-test" / "predictions.csv")
    applied = {}
    if chosen["min_confidence"] is not None:
        kept = preds[preds["confidence"] >= chosen["min_confidence"]]
        applied = {"coverage": len(kept) / len(preds),
                   "accuracy": float((kept["true"] == kept["predicted"]).mean()) if len(kept) else None}
    return {"run": str(run_dir), "manifest": str(manifest), "stress": stressed,
            "outside_white_10db": {k: outside[k] for k in ("uar", "accuracy", "n")},
            "groups": groups["groups"], "group_warnings": groups["group_warnings"],
            "test": {k: groups[k] for k in ("uar", "accuracy", "ece", "aurc")},
            "abstention": {"validation": chosen, "test_at_threshold": applied,
                           "test_aurc": groups["abstention"]},
            "seconds": time.time() - t0, **timings, "load": loadavg()}


def render(r: dict) -> str:
    s = r["stress"]
    clean = s["clean"]
    rows = [["clean", "", fmt(clean["uar"], 3), "", "", fmt(clean["accuracy"], 3), fmt(clean["ece"], 3), ""]]
    for c in s["conditions"]:
        params = {k: v for k, v in c["params"].items()}
        rows.append([c["name"], json.dumps(params).strip("{}").replace('"', ""), fmt(c["uar"], 3),
                     f"{c['uar_drop']:+.3f}", f"({c['uar_drop_ci'][0]:+.3f}, {c['uar_drop_ci'][1]:+.3f})",
                     fmt(c["accuracy"], 3), fmt(c["ece"], 3), f"{c['flipped']:.0%}"])
    white = next((c for c in s["conditions"] if c["name"] == "white-10dB"), None)
    out = r["outside_white_10db"]
    g = r["groups"]["gender"]
    spk = r["groups"]["speaker"]["groups"]
    a = r["abstention"]
    lines = [SECTION_TITLE, "",
             f"`configs/ravdess-whisper.yaml` trained on RAVDESS actors 01-12 (validation: the speaker `prepare` "
             f"held out), scored on actors 13-16 ({clean['n']} clips: 13 and 15 male, 14 and 16 female). Measured on a "
             f"shared 2-core machine (load {', '.join(f'{x:.1f}' for x in r['load'])}; the stress run took "
             f"{r.get('stress_s', 0) / 60:.0f} min); these are 4 speakers, so the intervals are wide.", "",
             table(["condition", "parameters", "UAR", "drop", "95% CI", "accuracy", "ECE", "flipped"], rows), ""]
    if white:
        lines += [f"White noise at 10 dB made **outside** emovox (numpy, written as 16-bit WAV, another seed) and "
                  f"scored with `emovox evaluate`: UAR {out['uar']:.3f}; the stress row: {white['uar']:.3f} "
                  f"(difference {white['uar'] - out['uar']:+.3f}).", ""]
    lines += ["**Groups** (`evaluate --by gender --by speaker`): " + ", ".join(
        f"{k} UAR {v['uar']:.3f} (n={v['n']})" for k, v in g["groups"].items())
        + (f"; gap {g['gap']['uar']['value']:.3f}" if g["gap"] else "") + " (the issue's target: at most 0.05; "
        "`benchmarks.gender_gap` below tries levers). Per speaker: "
        + ", ".join(f"{k} {v['uar']:.3f}" for k, v in spk.items()) + ".", ""]
    v = a["validation"]
    if v["min_confidence"] is not None:
        t = a["test_at_threshold"]
        lines += [f"**Abstention**: on the validation speaker, `--min-confidence {v['min_confidence']:.3f}` reaches "
                  f"accuracy {v['accuracy']:.3f} at coverage {v['coverage']:.0%} (target {v['target_accuracy']}); "
                  f"applied to the test speakers it answers {t['coverage']:.0%} of the clips at accuracy "
                  f"{t['accuracy']:.3f} (all clips: {r['test']['accuracy']:.3f}). Test AURC "
                  f"{a['test_aurc']['aurc']:.3f} (oracle {a['test_aurc']['optimal']:.3f})."
                  + (" The recipe refits its head on train + validation (`training.head_refit`), so the validation "
                     "speaker is not held out from the final model: its perfect accuracy makes this threshold the "
                     "lowest confidence seen there, not a calibrated choice; choose P on speakers the final model "
                     "has not seen (a run without the refit, or cross-validation)." if v["accuracy"] >= 0.999 else ""),
                  ""]
    else:
        lines += [f"**Abstention**: no threshold reaches accuracy {v['target_accuracy']} on the validation speaker. "
                  f"Test AURC {a['test_aurc']['aurc']:.3f}.", ""]
    return "\n".join(lines)


def splice(section: str, results_md: Path = ROOT / "RESULTS.md", *, title: str = SECTION_TITLE) -> Path:
    """Put ``section`` into RESULTS.md in place of an earlier one titled ``title``, else before the
    run notes."""
    text = results_md.read_text()
    pattern = re.compile(re.escape(title) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n", text)
    else:
        marker = "\n## Notes on this run"
        at = text.find(marker)
        text = text + "\n" + section if at < 0 else text[:at] + "\n" + section.rstrip() + "\n" + text[at:]
    results_md.write_text(text)
    return results_md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stress_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a trained run dir (default: train one)")
    ap.add_argument("--manifest", type=Path, help="its RAVDESS manifest with actors 13-16 as test")
    ap.add_argument("--conditions", help="a subset of stress conditions (default: all)")
    ap.add_argument("--render-only", action="store_true", help="splice the stored result into RESULTS.md")
    args = ap.parse_args(argv)
    if args.render_only:
        stored = load_result("stress")
        if stored is None:
            raise SystemExit("no stored stress result: run without --render-only first")
        result = stored["result"]
    else:
        import datetime as dt

        started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        result = run(run_dir=args.run, manifest=args.manifest, conditions=args.conditions)
        ld = result["load"]
        save_result("stress", {"result": result, "started": started, "quick": False, "seconds": result["seconds"],
                               "load": {"start_1m": ld[0], "mean_1m": ld[0], "max_1m": ld[0]}})
    print(f"wrote {splice(render(result))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
