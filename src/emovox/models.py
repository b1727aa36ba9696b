"""Backbones and heads: from a hub id, a local directory, or a size preset built offline.

Presets build a randomly initialised Wav2Vec2 so tests and the demo never touch the network;
``base`` is the real wav2vec2-base architecture (and feature extractor settings).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import SAMPLE_RATE
from .errors import BadConfig
from .labels import LabelScheme

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

DROPOUT_KEYS = (
    "hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout",
    "final_dropout", "layerdrop", "mask_time_prob",
)


@dataclass
class ModelConfig:
    """The ``model.*`` config section."""

    name: str = "tiny"
    freeze_feature_encoder: bool = True
    gradient_checkpointing: bool = False
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    activation_dropout: float | None = None
    feat_proj_dropout: float | None = None
    final_dropout: float | None = None
    layerdrop: float | None = None
    mask_time_prob: float | None = None


def _label_kwargs(scheme: LabelScheme) -> dict[str, Any]:
    return dict(num_labels=len(scheme), id2label=scheme.id2label, label2id=scheme.label2id)


def preset_config(size: str, scheme: LabelScheme, **overrides: Any):
    """A Wav2Vec2Config for a preset size with the scheme's labels.

    Raises:
        BadConfig: unknown size.
    """
    from transformers import Wav2Vec2Config

    if size not in PRESETS:
        raise BadConfig(f"unknown model size {size!r}; valid: {', '.join(PRESETS)}, a hub id or a directory")
    return Wav2Vec2Config(**PRESETS[size], **_label_kwargs(scheme), **overrides)


def preset_feature_extractor(size: str):
    """wav2vec2-base normalises with group norm and takes no attention mask; layer-norm presets do."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
        return_attention_mask=size != "base",
    )


def init_model(*, size: str, scheme: LabelScheme, out: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised preset model and its feature extractor to ``out``.

    The directory loads with ``from_pretrained`` exactly as a hub model does.
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


def load_model(name: str, scheme: LabelScheme, cfg: ModelConfig | None = None, *, seed: int = 0):
    """Model and feature extractor for training: preset, local directory or hub id.

    A pretrained checkpoint gets a fresh classification head sized for ``scheme``; dropout
    overrides from ``cfg`` go into the model config before the weights load.

    Raises:
        BadConfig: the name is neither a preset, a directory nor a loadable hub id.
    """
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    cfg = cfg or ModelConfig(name=name)
    overrides = {k: getattr(cfg, k) for k in DROPOUT_KEYS if getattr(cfg, k) is not None}
    torch.manual_seed(seed)
    if name in PRESETS:
        model = AutoModelForAudioClassification.from_config(preset_config(name, scheme, **overrides))
        fe = preset_feature_extractor(name)
    else:
        try:
            config = AutoConfig.from_pretrained(name, **_label_kwargs(scheme), **overrides)
            model = AutoModelForAudioClassification.from_pretrained(
                name, config=config, ignore_mismatched_sizes=True
            )
            fe = AutoFeatureExtractor.from_pretrained(name)
        except (OSError, ValueError) as exc:
            raise BadConfig(
                f"cannot load model {name!r}: {str(exc).splitlines()[0]} "
                f"(use a local directory, a reachable hub id, or a size: {', '.join(PRESETS)})"
            ) from None
    if cfg.freeze_feature_encoder:
        freeze_feature_encoder(model)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, fe


def freeze_feature_encoder(model) -> None:
    """Stop gradients into the convolutional feature encoder (wav2vec2, HuBERT, WavLM, data2vec)."""
    if hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
        return
    for p in model.base_model.feature_extractor.parameters():
        p.requires_grad = False


def uses_attention_mask(feature_extractor) -> bool:
    """Whether to pass an attention mask: the feature extractor's setting follows the model's norm."""
    return bool(getattr(feature_extractor, "return_attention_mask", True))
