"""The convolutional feature encoder of wav2vec2-family models rewritten as MatMuls, for export.

ONNX Runtime's dynamic int8 quantisation has a fast kernel for ``MatMul`` but not for ``Conv``
(``ConvInteger`` is slower than fp32 on AVX2), so exported as convolutions the encoder -- about a
third of wav2vec2-base's FLOPs -- stays fp32. Each strided 1-D convolution after the first is
exactly ``frames @ W`` where a frame is the ``k`` input steps it covers, laid side by side: the
same sums in another order (equal to fp32 rounding). The first layer (one input channel, group
norm over time in wav2vec2-base) is cheap and stays a convolution.

Used only on an eval-mode copy of the model that is being exported; training never sees it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class MatMulConvLayer(nn.Module):
    """One feature-encoder layer (conv -> [layer norm] -> activation) on channels-last ``[B, T, C]``.

    Frames are built from reshapes (``stride`` taps at a time, no copy per tap) plus single
    strided slices for the taps left over when the kernel is not a multiple of the stride.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        conv = layer.conv
        self.k, self.s = conv.kernel_size[0], conv.stride[0]
        w = conv.weight.detach()  # [C_out, C_in, k] -> [k * C_in, C_out], tap-major like the frames
        self.c_in = w.shape[1]
        self.weight = nn.Parameter(w.permute(2, 1, 0).reshape(self.k * self.c_in, w.shape[0]).contiguous())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.layer_norm = getattr(layer, "layer_norm", None)
        self.activation = layer.activation

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C] -> [B, T_out, k * C]``: for each output step, its ``k`` input steps."""
        t_out = (x.shape[1] - self.k) // self.s + 1
        parts = []
        full = self.k // self.s  # blocks of `stride` consecutive taps: one reshape each
        for b in range(full):
            start = b * self.s
            parts.append(x[:, start:start + self.s * t_out].reshape(x.shape[0], -1, self.s * self.c_in))
        for j in range(full * self.s, self.k):  # leftover taps: one strided slice each
            parts.append(x[:, j:j + self.s * (t_out - 1) + 1:self.s])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.frames(x) @ self.weight
        if self.bias is not None:
            y = y + self.bias
        if self.layer_norm is not None:
            y = self.layer_norm(y)
        return self.activation(y)


class MatMulFeatureEncoder(nn.Module):
    """Drop-in for a wav2vec2-family feature encoder (eval only): ``[B, T] -> [B, C, T']``."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.first = encoder.conv_layers[0]
        self.rest = nn.ModuleList(MatMulConvLayer(layer) for layer in encoder.conv_layers[1:])

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        x = self.first(input_values[:, None]).transpose(1, 2)
        for layer in self.rest:
            x = layer(x)
        return x.transpose(1, 2)


def convertible(encoder: Any) -> bool:
    """Whether ``encoder`` has the wav2vec2 shape: conv layers of a 1-D conv, an optional layer
    norm over channels (not group norm, which needs the time axis) and an activation."""
    layers = getattr(encoder, "conv_layers", None)
    if layers is None or len(layers) < 2:
        return False
    for layer in layers[1:]:
        conv, norm = getattr(layer, "conv", None), getattr(layer, "layer_norm", None)
        if not isinstance(conv, nn.Conv1d) or conv.groups != 1 or conv.dilation[0] != 1 or conv.padding[0] != 0:
            return False
        if norm is not None and not isinstance(norm, nn.LayerNorm):
            return False
        if not hasattr(layer, "activation"):
            return False
    return True


def use_matmul_encoder(model: nn.Module) -> bool:
    """Swap the feature encoder of an audio-classification model for ``MatMulFeatureEncoder`` in
    place, when it has the supported shape; returns whether it did."""
    base = model.base_model
    encoder = getattr(base, "feature_extractor", None)
    if not convertible(encoder):
        return False
    base.feature_extractor = MatMulFeatureEncoder(encoder)
    return True
