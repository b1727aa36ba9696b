"""The backbone layer: one module per encoder family behind one small interface.

The rest of emovox asks a :class:`Backbone` instead of testing ``model_type``: how a wave becomes
the model's input (and which feature extractor does it), how a batch is padded and masked, how
hidden states and the real-frame mask come out, what can be frozen, and what export needs.
:func:`backbone_for` finds the family of a config, an encoder or a classifier.

Families: ``wav2vec2`` (wav2vec2, HuBERT, WavLM, data2vec-audio), ``whisper`` (its encoder,
at each clip's own length); any other audio-classification
model is scored as it is through ``generic``. Adding one is a module here
and an entry in ``_FAMILIES``; heads, the feature cache, prediction and export need no change.
"""
from __future__ import annotations

from typing import Any

from ...errors import BadConfig
from .base import Backbone
from .generic import GenericFamily
from .wav2vec2 import Wav2Vec2Family
from .whisper import WhisperFamily

__all__ = ["Backbone", "backbone_for", "supported_model_types"]


def backbone_for(obj: Any, *, strict: bool = True) -> Backbone:
    """The family of a config, an encoder or a classifier (anything with ``.config.model_type``).

    Args:
        obj: A config, an encoder or a classifier.
        strict: Refuse a model type no family covers; with False such a model gets the generic
            family, which scores it as it is (prediction, evaluation, export).

    Raises:
        BadConfig: with ``strict``, a model type no family covers, naming the supported ones.
    """
    config = getattr(obj, "config", obj)
    model_type = str(getattr(config, "model_type", "") or "")
    for family in _families():
        if model_type in family.model_types:
            return family
    supported = ", ".join(supported_model_types())
    if not strict:
        return GenericFamily(model_type, str(getattr(obj, "main_input_name", "input_values")), supported)
    raise BadConfig(f"model type {model_type or type(obj).__name__!r} has no emovox backbone; supported: {supported}")


def supported_model_types() -> list[str]:
    return [t for f in _families() for t in f.model_types]


def _families() -> list[Backbone]:
    return _FAMILIES


_FAMILIES: list[Backbone] = [Wav2Vec2Family(), WhisperFamily()]
