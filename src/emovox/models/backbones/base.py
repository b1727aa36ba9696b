"""The interface every encoder family implements (see the package docstring)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

TRIM_FLAG = "emovox_trim_silence_db"  # saved in preprocessor_config.json, so predict does as training did


class Backbone:
    """What emovox needs to know about an encoder family. Subclasses fill it in.

    Attributes:
        family: Short family name (saved in ``emovox.json``).
        model_types: The Transformers ``model_type`` values this family covers.
        input_name: The keyword the encoder takes its input under.
    """

    family: str = ""
    model_types: tuple[str, ...] = ()
    input_name: str = "input_values"

    # -- waves -> inputs -------------------------------------------------------------------
    def uses_attention_mask(self, feature_extractor: Any) -> bool:
        """Whether batches carry an attention mask (else every batch must be of equal length)."""
        raise NotImplementedError

    def default_feature_extractor(self, config: Any) -> Any:
        """The feature extractor for a model folder that saved none."""
        raise NotImplementedError

    def featurize(self, feature_extractor: Any, wave: np.ndarray) -> np.ndarray:
        """One clip's model input, unpadded, float32; time is the last axis. Leading and trailing
        silence are cut first when the run asks for it (``model.trim_silence_db``, saved in the
        feature extractor, so training, evaluation, prediction and the feature cache all do it)."""
        top_db = getattr(feature_extractor, TRIM_FLAG, None)
        if top_db:
            from ...data.audio import trim_silence

            wave = trim_silence(np.asarray(wave, dtype=np.float32), float(top_db))
        return self.model_input(feature_extractor, wave)

    def model_input(self, feature_extractor: Any, wave: np.ndarray) -> np.ndarray:
        """The family's own wave -> model input step (``featurize`` calls it)."""
        raise NotImplementedError

    def pad(self, items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Zero-pad featurized clips along time: (batch, mask over time int64)."""
        from ...data.padding import pad_batch

        return pad_batch(items)

    # -- encoder -> frames -----------------------------------------------------------------
    def frame_mask(self, encoder: Any, n_frames: int, attention_mask: Any | None, batch: int) -> Any:
        """Bool [B, frames]: True for output frames inside each clip."""
        raise NotImplementedError

    def encode(self, encoder: Any, inputs: Any, attention_mask: Any | None, *, all_layers: bool):
        """Run the encoder: ``(last [B, T, H], layers [B, L+1, T, H] or None, frame mask [B, T])``.

        ``last`` is the encoder's output (``last_hidden_state``); ``layers`` are its hidden states
        as the model returns them (with ``all_layers``). They differ in the last entry where the
        final layer norm comes after the hidden states are collected (transformers 5)."""
        raise NotImplementedError

    def n_layers(self, config: Any) -> int:
        """Transformer layers of the encoder (hidden states come as ``n_layers + 1``)."""
        return int(config.num_hidden_layers)

    def hidden_size(self, config: Any) -> int:
        return int(config.hidden_size)

    # -- where the encoder is, and how it loads ------------------------------------------------
    def encoder_of(self, classifier: Any) -> Any:
        """The encoder inside a classifier (or the encoder itself)."""
        base = getattr(classifier, "base_model", classifier)
        return base

    def encoder_from_pretrained(self, name: Any, config: Any) -> Any:
        """A bare encoder with pretrained weights, for an emovox head."""
        from transformers import AutoModel

        return AutoModel.from_pretrained(name, config=config)

    def encoder_from_config(self, config: Any) -> Any:
        """A bare, randomly initialised encoder of ``config`` (weights are loaded after)."""
        from transformers import AutoModel

        return AutoModel.from_config(config)

    def classifier_class(self, stock: type) -> type:
        """The class emovox trains and runs for the stock classifier class ``stock``."""
        return stock

    def configure_inputs(self, feature_extractor: Any, *, window_seconds: float, pad_to_window: bool) -> None:
        """Set how the feature extractor shapes clips for this run (nothing by default)."""

    @staticmethod
    def configure_trim(feature_extractor: Any, top_db: float | None) -> None:
        """Record ``model.trim_silence_db`` in the feature extractor (saved with the run dir)."""
        if feature_extractor is None:
            return
        if top_db:
            setattr(feature_extractor, TRIM_FLAG, float(top_db))
        elif hasattr(feature_extractor, TRIM_FLAG):
            delattr(feature_extractor, TRIM_FLAG)

    def max_seconds(self, config: Any) -> float | None:
        """The longest input the model takes (None: no limit); prediction windows stay within it."""
        return None

    def prepare_to_save(self, model: Any, feature_extractor: Any, *, window_seconds: float) -> None:
        """Adjust a trained model and its feature extractor before saving (nothing by default)."""

    def pipeline_differences(self, settings: dict[str, Any]) -> list[str]:
        """What a plain ``transformers.pipeline("audio-classification")`` does otherwise than emovox
        for a run saved with these feature-extractor ``settings`` (its ``preprocessor_config.json``);
        empty when the pipeline computes the same scores."""
        if settings.get(TRIM_FLAG):
            return [f"emovox cuts leading and trailing silence ({settings[TRIM_FLAG]:g} dB, model.trim_silence_db) "
                    "before the encoder; the pipeline encodes the whole clip"]
        return []

    # -- what can be frozen ----------------------------------------------------------------
    def freeze_front_end(self, encoder: Any) -> None:
        """No gradient into the front end (convolutional feature encoder)."""
        raise NotImplementedError

    def layers(self, encoder: Any) -> list:
        """The transformer layers, input side first."""
        raise NotImplementedError

    def layers_pattern(self) -> str:
        """The attribute name that holds the layer list (for LoRA's ``layers_to_transform``)."""
        return "layers"

    def below_layers(self, encoder: Any) -> list:
        """Modules and parameters between the front end and the first layer, frozen with it."""
        return []

    # -- export ----------------------------------------------------------------------------
    int8_smoothing = False  # rescale the encoder exactly before int8 export (inference/smoothing.py)

    def export_note(self) -> str:
        """What the ONNX graph takes, for the export's log."""
        return f"{self.input_name} [batch, time]"
