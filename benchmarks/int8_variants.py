"""The int8 exports emovox chose between, rebuilt so every run re-measures the choice: each
variant is ``emovox.inference.export``'s graph (convolutional or MatMul feature encoder) quantised with
other ``quantize_dynamic`` options. emovox's own default export is measured beside them."""
from __future__ import annotations

import copy
import hashlib
import logging
import shutil
import warnings
from pathlib import Path

VARIANTS = {
    # name -> (feature encoder as MatMuls?, weight type, per_channel, reduce_range)
    "MatMul only, u8 weights, per-tensor (session 1's default)": (False, "uint8", False, False),
    "MatMul only, s8 7-bit per-channel": (False, "int8", True, True),
    "encoder as MatMuls, u8 weights, per-channel": (True, "uint8", True, False),
    "encoder as MatMuls, s8 7-bit per-tensor": (True, "int8", False, True),
}


def quantize_variant(src: Path, dst: Path, *, weight_type: str, per_channel: bool, reduce_range: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        muted = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], per_channel=per_channel,
                             reduce_range=reduce_range,
                             weight_type=QuantType.QUInt8 if weight_type == "uint8" else QuantType.QInt8)
        finally:
            logging.disable(muted)
    return dst


def variant_dirs(run_dir: Path, work: Path) -> dict[str, Path]:
    """Export every variant of ``run_dir`` once (cached in ``work``, redone when the run dir or
    this file or emovox's export code changes); predictor-ready directories by variant name."""
    from emovox.inference.export import copy_run_files, export_graph, load_torch_classifier
    from emovox.models.backbones import backbone_for
    from emovox.models.matmul_encoder import use_matmul_encoder

    stamp = run_dir / ".bench_key"
    h = hashlib.sha1(Path(__file__).read_bytes())
    for mod in ("inference/export.py", "models/matmul_encoder.py"):
        h.update((Path(__file__).parents[1] / "src" / "emovox" / mod).read_bytes())
    key = (stamp.read_text().strip() if stamp.exists() else "") + h.hexdigest()[:8]

    def fresh(d: Path) -> bool:
        return (d / "model.onnx").exists() and (d / ".bench_key").exists() and (d / ".bench_key").read_text() == key

    sources = {}
    for use_mm in (False, True):
        d = work / f"{run_dir.name}_variant_{'mm' if use_mm else 'conv'}_fp32"
        if not fresh(d):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            model, fe = load_torch_classifier(run_dir)
            if use_mm:
                model = copy.deepcopy(model)
                use_matmul_encoder(model)
            with_mask = backbone_for(model.config).uses_attention_mask(fe)
            export_graph(model, d / "model.onnx", with_mask=with_mask, opset=17, dynamo=False)
            copy_run_files(run_dir, d, model=model, fe=fe)
            (d / ".bench_key").write_text(key)
        sources[use_mm] = d / "model.onnx"
    out: dict[str, Path] = {}
    for name, (use_mm, wt, per_channel, reduce_range) in VARIANTS.items():
        tag = f"{'mm' if use_mm else 'conv'}_{wt}{'_pc' if per_channel else ''}{'_rr' if reduce_range else ''}"
        d = work / f"{run_dir.name}_variant_{tag}"
        if not fresh(d):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            quantize_variant(sources[use_mm], d / "model.onnx", weight_type=wt, per_channel=per_channel,
                             reduce_range=reduce_range)
            copy_run_files(run_dir, d)
            (d / ".bench_key").write_text(key)
        out[name] = d
    return out
