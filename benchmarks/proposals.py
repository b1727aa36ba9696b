"""Speed changes proposed for emovox, prototyped here so the benchmark can measure them before
anyone edits ``src/emovox`` (each is labelled "proposal" in RESULTS.md, never "emovox").

``matmul_feature_encoder``: export the convolutional feature encoder as strided slices + MatMul.
ONNX Runtime's dynamic int8 quantisation then covers the encoder too (``DynamicQuantizeMatMul``;
``ConvInteger`` has no fast AVX2 kernel), instead of leaving a third of the FLOPs in fp32 ``Conv``.
The function is exact in fp32 (same sums, different order).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class MatMulConvLayer(nn.Module):
    """One wav2vec2 feature-encoder layer (conv -> [norm] -> GELU) computed as
    ``concat_j x[:, j::stride] @ W_j`` on a ``[B, T, C]`` sequence (channels last)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        conv = layer.conv
        self.k, self.s = conv.kernel_size[0], conv.stride[0]
        w = conv.weight.detach()  # [C_out, C_in, k]
        self.weight = nn.Parameter(w.permute(2, 1, 0).reshape(self.k * w.shape[1], w.shape[0]).contiguous())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.layer_norm = getattr(layer, "layer_norm", None)
        if isinstance(self.layer_norm, nn.GroupNorm):
            raise ValueError("group norm layers stay convolutions")
        self.activation = layer.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C]
        t_out = (x.shape[1] - self.k) // self.s + 1
        span = self.s * (t_out - 1) + 1
        cols = torch.cat([x[:, j:j + span:self.s] for j in range(self.k)], dim=2)
        y = cols @ self.weight
        if self.bias is not None:
            y = y + self.bias
        if self.layer_norm is not None:
            y = self.layer_norm(y)
        return self.activation(y)


class MatMulFeatureEncoder(nn.Module):
    """Drop-in for ``Wav2Vec2FeatureEncoder`` (eval only): the first layer (1 input channel,
    group norm in wav2vec2-base) stays a convolution; the rest run as MatMuls channels-last."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.first = encoder.conv_layers[0]
        self.rest = nn.ModuleList(MatMulConvLayer(layer) for layer in encoder.conv_layers[1:])

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        x = self.first(input_values[:, None]).transpose(1, 2)
        for layer in self.rest:
            x = layer(x)
        return x.transpose(1, 2)  # [B, C, T] as the model expects


def matmul_feature_encoder(model: nn.Module) -> nn.Module:
    """Swap the feature encoder of a loaded audio-classification model in place (eval use)."""
    base = model.base_model
    base.feature_extractor = MatMulFeatureEncoder(base.feature_extractor)
    return model


def quantize_variant(src: Path, dst: Path, *, weight_type: str = "uint8", per_channel: bool = False,
                     reduce_range: bool = False, ops: tuple[str, ...] = ("MatMul",)) -> Path:
    """Dynamic int8 quantisation with the options emovox's ``quantize_onnx`` does not expose."""
    import warnings

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(src, dst, op_types_to_quantize=list(ops), per_channel=per_channel, reduce_range=reduce_range,
                         weight_type=QuantType.QUInt8 if weight_type == "uint8" else QuantType.QInt8)
    return dst


PROPOSALS = {
    # name -> (MatMul feature encoder?, weight type, per_channel, reduce_range)
    "u8 weights, per-channel": (False, "uint8", True, False),
    "s8 weights, reduce_range": (False, "int8", False, True),
    "MatMul encoder, u8 weights": (True, "uint8", False, False),
    "MatMul encoder, s8 weights, reduce_range": (True, "int8", False, True),
}


def proposal_dirs(run_dir: Path, work: Path) -> dict[str, Path]:
    """Export every proposal once per run dir (cached in ``work``, redone when the run dir's
    fixture key changes); returns predictor-ready directories by proposal name."""
    import shutil

    from emovox.export import _export_graph, copy_run_files, load_torch_classifier
    from emovox.models import uses_attention_mask

    stamp = run_dir / ".bench_key"
    import hashlib

    key = (stamp.read_text().strip() if stamp.exists() else "") + hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:8]

    def fresh(d: Path) -> bool:
        return (d / "model.onnx").exists() and (d / ".bench_key").exists() and (d / ".bench_key").read_text() == key

    sources = {}
    for use_mm in (False, True):
        d = work / f"{run_dir.name}_proposal_{'mm' if use_mm else 'conv'}_fp32"
        if not fresh(d):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            model, fe = load_torch_classifier(run_dir)
            if use_mm:
                matmul_feature_encoder(model)
            _export_graph(model, d / "model.onnx", with_mask=uses_attention_mask(fe), opset=17, dynamo=False)
            copy_run_files(run_dir, d)
            (d / ".bench_key").write_text(key)
        sources[use_mm] = d / "model.onnx"
    out: dict[str, Path] = {}
    for name, (use_mm, wt, per_channel, reduce_range) in PROPOSALS.items():
        tag = f"{'mm' if use_mm else 'conv'}_{wt}{'_pc' if per_channel else ''}{'_rr' if reduce_range else ''}"
        d = work / f"{run_dir.name}_proposal_{tag}"
        if not fresh(d):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            quantize_variant(sources[use_mm], d / "model.onnx", weight_type=wt, per_channel=per_channel,
                             reduce_range=reduce_range)
            copy_run_files(run_dir, d)
            (d / ".bench_key").write_text(key)
        out[name] = d
    return out
