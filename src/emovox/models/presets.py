"""Size presets: randomly initialised wav2vec2 models built offline, for tests and the demo.

``base`` is the real wav2vec2-base architecture and feature-extractor settings (group norm, no
attention mask), so speed measured on it holds for ``facebook/wav2vec2-base``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.audio import SAMPLE_RATE
from ..errors import BadConfig
from ..labels import LabelScheme

_STABLE = dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        classifier_proj_size=32, **_STABLE,
    ),
    "small": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        conv_dim=(256,) * 7, num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16,
        classifier_proj_size=128, **_STABLE,
    ),
    "base": {},  # Wav2Vec2Config() defaults are facebook/wav2vec2-base
}


def label_kwargs(scheme: LabelScheme) -> dict[str, Any]:
    """The config entries that carry a scheme's labels (``id2label``/``label2id``)."""
    return dict(num_labels=len(scheme), id2label=scheme.id2label, label2id=scheme.label2id)


def preset_config(size: str, scheme: LabelScheme, **overrides: Any):
    """A Wav2Vec2Config for a preset size with the scheme's labels.

    Raises:
        BadConfig: unknown size.
    """
    from transformers import Wav2Vec2Config

    if size not in PRESETS:
        raise BadConfig(f"unknown model size {size!r}; valid: {', '.join(PRESETS)}, a hub id or a directory")
    return Wav2Vec2Config(**PRESETS[size], **label_kwargs(scheme), **overrides)


def preset_feature_extractor(size: str):
    """wav2vec2-base normalises with group norm and takes no attention mask; layer-norm presets do."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
        return_attention_mask=size != "base",
    )


def init_model(*, size: str, scheme: LabelScheme, out: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised preset model and its feature extractor to ``out``.

    The directory loads with ``from_pretrained`` exactly as a hub model does, and every command
    that takes a model (predict, evaluate, export, train --model) accepts it.

    Raises:
        BadConfig: unknown size.
    """
    import torch
    from transformers import AutoModelForAudioClassification

    torch.manual_seed(seed)
    model = AutoModelForAudioClassification.from_config(preset_config(size, scheme))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    preset_feature_extractor(size).save_pretrained(out)
    return out
