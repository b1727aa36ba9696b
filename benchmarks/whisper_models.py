"""Real Whisper models for the benchmarks, built once into ``_work``: the RAVDESS manifests (actors
01-08 to train on, 09-16 never seen), whisper-base probes trained on real speech with
``configs/whisper-probe-stock.yaml`` (own length; own length with configs/whisper-probe.yaml's silence
trimming; ``model.pad_to_window=true``), their ONNX exports.

The encoder is ``models/whisper-base`` (``make whisper-base``); ``--quick`` uses Whisper tiny.en
from its registry package instead (``emovox.models.registry``).
"""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Callable

from benchmarks.common import ROOT, WORK, ravdess_dir
from benchmarks.fixtures import code_key, is_fresh, stamp

REPO = ROOT.parent
PROBE_CONFIG = REPO / "configs" / "whisper-probe-stock.yaml"
TRAIN_ACTORS = [f"{a:02d}" for a in range(1, 9)]
TRIM_DB = 35.0  # configs/whisper-probe.yaml's model.trim_silence_db
TEST_ACTORS = [f"{a:02d}" for a in range(9, 17)]


def encoder(quick: bool) -> tuple[str, str]:
    """(name, transformers dir) of the real Whisper encoder: base, or tiny.en with --quick.

    Raises:
        RuntimeError: models/whisper-base is missing (``make whisper-base`` makes it).
    """
    if quick:
        from emovox.models.registry import registry_model

        return "whisper-tiny.en", str(registry_model("whisper-tiny.en"))
    path = REPO / "models" / "whisper-base"
    if not (path / "config.json").exists():
        raise RuntimeError(f"{path} is missing: run `make whisper-base` first (the Whisper sections need it)")
    return "whisper-base", str(path)


def ravdess_manifest() -> Path:
    """RAVDESS actors 01-16 prepared once, actors 09-16 as the test split (never trained on)."""
    from emovox.data.prepare import prepare

    root = ravdess_dir()
    if root is None or not root.exists():
        raise RuntimeError("the Whisper sections need RAVDESS (EMOVOX_TEST_DATA/ravdess16k)")
    out = WORK / "prep_ravdess_test09-16"
    manifest = out / "manifest.csv"
    if not manifest.exists():
        prepare(corpus="ravdess", root=root, out=out, test_speakers=TEST_ACTORS, drop_invalid=True)
    return manifest


def test_files(manifest: Path) -> tuple[list[str], list[str]]:
    """Paths and labels of the 480 test clips (actors 09-16), in manifest order."""
    import pandas as pd

    df = pd.read_csv(manifest, keep_default_na=False)
    test = df[df["split"] == "test"]
    return list(test["path"]), list(test["label"])


def probe_run(quick: bool, *, pad_to_window: bool = False, trim: bool = False,
              log: Callable[[str], None] | None = None) -> Path:
    """``emovox train --config configs/whisper-probe-stock.yaml --model <encoder>`` on actors 01-08.

    ``trim=True`` adds configs/whisper-probe.yaml's silence trimming (``model.trim_silence_db``,
    ``TRIM_DB``); the ``pad_to_window`` twin never trims (it runs exactly what the pipeline runs).
    """
    from emovox.training.train import train

    name, model = encoder(quick)
    manifest = ravdess_manifest()
    trim = trim and not pad_to_window
    out = WORK / f"run_{name}_probe{'_padded' if pad_to_window else ''}{'_trimmed' if trim else ''}"
    key = f"{manifest}-{model}-{pad_to_window}-{trim}-" + code_key("training/features.py", "models/heads.py",
                                                                   "models/backbones/whisper.py", "data/audio.py")
    key += "-" + hashlib.sha1(PROBE_CONFIG.read_bytes()).hexdigest()[:8]
    if not is_fresh(out, key):
        shutil.rmtree(out, ignore_errors=True)
        if log:
            log(f"  training the {name} probe on RAVDESS actors 01-08 (pad_to_window={pad_to_window}, trim={trim}) ...")
        t = time.perf_counter()
        overrides = [f"model.pad_to_window={str(pad_to_window).lower()}"] + ([f"model.trim_silence_db={TRIM_DB:g}"] if trim else [])
        res = train(config=PROBE_CONFIG, manifest=manifest, out=out, model=model, progress=False, overrides=overrides)
        stamp(out, key, {"train_s": round(time.perf_counter() - t, 1), "steps": res.steps,
                          "val_uar": res.metrics.get("eval_uar"), "val_accuracy": res.metrics.get("eval_accuracy")})
    return out
