"""The backbone layer: one module per encoder family behind one small interface.

The rest of emovox asks a :class:`Backbone` instead of testing ``model_type``: how a wave becomes
the model's input (and which feature extractor does it), how a batch is padded and masked, how
hidden states and the real-frame mask come out, what can be frozen, and what export needs.
:func:`backbone_for` finds the family of a config, an encoder or a classifier; it runs once, where a
model is loaded (:func:`carry_family`), and the model and its encoder carry the answer from then on
(:func:`family_of`), so the levers after loading never dispatch on ``model_type`` again.

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

__all__ = ["Backbone", "backbone_for", "carry_family", "family_of", "supported_model_types"]

CARRIED = "emovox_family"  # the attribute a loaded model (and its encoder) holds its family in


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


def carry_family(model: Any, family: Backbone | None = None) -> Backbone:
    """Resolve ``model``'s family once, where it is loaded (or take ``family``), and hold it on the
    model and on its encoder, where :func:`family_of` finds it.

    Raises:
        BadConfig: never for a loaded model (an unknown type gets the generic family); a loader that
            must refuse one resolves it with :func:`backbone_for` first and passes it in.
    """
    family = family if family is not None else backbone_for(model, strict=False)
    try:
        encoder = family.encoder_of(model)
    except AttributeError:  # a classifier without a separate encoder (generic models)
        encoder = None
    for part in (model, encoder):
        if part is not None:
            object.__setattr__(part, CARRIED, family)
    return family


def family_of(model: Any) -> Backbone:
    """The family ``model`` (a classifier or its encoder) carries since it was loaded; a model that
    came from outside emovox's loaders is resolved now, and carries it from then on."""
    family = model.__dict__.get(CARRIED) if hasattr(model, "__dict__") else None
    return family if family is not None else carry_family(model)


def supported_model_types() -> list[str]:
    return [t for f in _families() for t in f.model_types]


def _families() -> list[Backbone]:
    return _FAMILIES


_FAMILIES: list[Backbone] = [Wav2Vec2Family(), WhisperFamily()]
