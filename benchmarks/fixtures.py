"""Models the benchmarks need, built once into ``_work`` and rebuilt when emovox's code changes:
randomly initialised run dirs (speed does not depend on the weights), their ONNX exports, and a
briefly *trained* model for int8 agreement (random models' near-uniform scores flip too easily)."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from benchmarks.common import ROOT, WORK

SRC = ROOT.parent / "src" / "emovox"


def code_key(*modules: str) -> str:
    h = hashlib.sha1()
    for name in modules:
        h.update((SRC / name).read_bytes())
    import onnxruntime
    import torch
    import transformers

    h.update(f"{torch.__version__} {onnxruntime.__version__} {transformers.__version__}".encode())
    return h.hexdigest()[:12]


def is_fresh(path: Path, key: str) -> bool:
    stamp = path / ".bench_key"
    return stamp.exists() and stamp.read_text().strip() == key


def stamp(path: Path, key: str, info: dict | None = None) -> None:
    (path / ".bench_key").write_text(key + "\n")
    if info is not None:
        (path / ".bench_info.json").write_text(json.dumps(info, indent=1))


def info(path: Path) -> dict:
    p = Path(path) / ".bench_info.json"
    return json.loads(p.read_text()) if p.exists() else {}


def random_run(size: str, scheme: str = "crema-d-21", *, seed: int = 0) -> Path:
    """A randomly initialised ``size`` preset as an emovox run dir (what ``init-model`` writes,
    plus the ``emovox.json`` a predictor reads)."""
    from emovox.labels import get_scheme
    from emovox.models.presets import init_model
    from emovox.rundir import RunDir, write_meta

    out = WORK / f"run_random_{size}_{scheme}"
    key = code_key("models/presets.py", "models/loading.py", "rundir.py")
    if not is_fresh(out, key):
        shutil.rmtree(out, ignore_errors=True)
        sch = get_scheme(scheme)
        init_model(size=size, scheme=sch, out=out, seed=seed)
        write_meta(RunDir(out), {"scheme": sch.to_dict(), "max_seconds": 5.0, "temperature": 1.0,
                                 "model_source": size, "seed": seed})
        stamp(out, key)
    return out


def exported(run_dir: Path, *, int8: bool, encoder: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """``emovox.inference.export.export_onnx`` of a run dir: fp32, int8 (defaults) or int8 with ``--int8-encoder``."""
    from emovox.inference.export import export_onnx

    out = run_dir.with_name(run_dir.name + ("_onnx_int8" + ("_encoder" if encoder else "") if int8 else "_onnx_fp32"))
    key = code_key("inference/export.py", "models/matmul_encoder.py", "models/loading.py") + _stamp_of(run_dir)
    if not is_fresh(out, key):
        shutil.rmtree(out, ignore_errors=True)
        if log:
            log(f"  exporting {run_dir.name} to ONNX ({'int8' if int8 else 'fp32'}) ...")
        t = time.perf_counter()
        res = export_onnx(run_dir=run_dir, out=out, int8=int8, int8_encoder=encoder)
        stamp(out, key, {"export_s": round(time.perf_counter() - t, 1), "max_prob_diff": res.max_prob_diff,
                          "quantized_ops": list(res.quantized_ops), "top1_agreement": res.top1_agreement})
    return out


def _stamp_of(run_dir: Path) -> str:
    p = run_dir / ".bench_key"
    return p.read_text().strip() if p.exists() else str(int((run_dir / "config.json").stat().st_mtime))


def trained_run(manifest: Path, *, size: str, steps: int, extra: tuple[str, ...] = (),
                log: Callable[[str], None] | None = None) -> Path:
    """A ``size`` model trained briefly with ``emovox train`` (configs/demo-tiny-random.yaml settings) on the
    synthetic corpus: confident enough that int8-vs-fp32 top-1 agreement means something."""
    from emovox.training.train import train

    out = WORK / f"run_trained_{size}_{steps}steps"
    key = f"{manifest}-{size}-{steps}-{extra}"  # a fixture: later changes to train.py need not retrain it
    if not is_fresh(out, key):
        shutil.rmtree(out, ignore_errors=True)
        if log:
            log(f"  training a {size} model for {steps} steps (int8 agreement needs a trained model) ...")
        t = time.perf_counter()
        res = train(config=ROOT.parent / "configs" / "demo-tiny-random.yaml", manifest=manifest, out=out, model=size,
                    overrides=[f"training.max_steps={steps}", f"training.eval_steps={steps}",
                               "training.early_stopping_patience=0", "training.dataloader_num_workers=0", *extra],
                    progress=False)
        for ckpt in out.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
        stamp(out, key, {"train_s": round(time.perf_counter() - t, 1), "steps": res.steps,
                          "val_uar": res.metrics.get("eval_uar"), "val_accuracy": res.metrics.get("eval_accuracy")})
    return out
