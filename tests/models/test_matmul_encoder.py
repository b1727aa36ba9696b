"""The feature encoder as MatMuls (what int8 export quantises) computes what the convolutions do."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

from emovox.models.matmul_encoder import MatMulFeatureEncoder, convertible, use_matmul_encoder
from emovox.models.presets import PRESETS
def _model(**over) -> Wav2Vec2ForSequenceClassification:
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(**{**PRESETS["tiny"], **over, "num_labels": 5})
    return Wav2Vec2ForSequenceClassification(cfg).eval()


@pytest.mark.parametrize("norm", ["layer", "group"])
@pytest.mark.parametrize("n_samples", [400, 401, 16_000, 23_457])
def test_matmul_encoder_equals_convolutions(norm, n_samples):
    """Layer norm on every conv (HuBERT-large/WavLM style) and group norm on the first only
    (wav2vec2-base style), at lengths that leave remainders at every stride."""
    model = _model(feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    x = torch.randn(2, n_samples) * 0.3
    enc = model.wav2vec2.feature_extractor
    with torch.inference_mode():
        ref = enc(x)
        got = MatMulFeatureEncoder(enc)(x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_kernels_not_a_multiple_of_the_stride_and_equal_to_it():
    """Kernels 3/2 (leftover tap), 4/2 (two reshaped blocks), 2/2 and 5/1 (every tap a slice)."""
    model = _model(conv_dim=(16,) * 5, conv_kernel=(10, 3, 4, 2, 5), conv_stride=(5, 2, 2, 2, 1),
                   feat_extract_norm="layer", do_stable_layer_norm=True)
    x = torch.randn(1, 9_001)
    enc = model.wav2vec2.feature_extractor
    with torch.inference_mode():
        torch.testing.assert_close(MatMulFeatureEncoder(enc)(x), enc(x), atol=1e-5, rtol=1e-4)


def test_swap_keeps_the_classifier_output():
    model = _model()
    swapped = copy.deepcopy(model)
    assert use_matmul_encoder(swapped)
    assert isinstance(swapped.wav2vec2.feature_extractor, MatMulFeatureEncoder)
    x = torch.randn(3, 12_000) * 0.2
    with torch.inference_mode():
        torch.testing.assert_close(swapped(x).logits, model(x).logits, atol=1e-5, rtol=1e-4)


def test_unsupported_encoders_are_left_alone():
    model = _model()
    enc = model.wav2vec2.feature_extractor
    odd = copy.deepcopy(enc)
    odd.conv_layers[2].conv.dilation = (2,)
    assert convertible(enc) and not convertible(odd) and not convertible(torch.nn.Linear(2, 2))
    model.wav2vec2.feature_extractor = odd
    assert not use_matmul_encoder(model)
    assert model.wav2vec2.feature_extractor is odd
