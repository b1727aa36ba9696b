"""Any other audio-classification model (AST, an audio spectrogram transformer, for example):
scored through its own feature extractor, one input shape per batch, as ``transformers.pipeline``
scores it. Prediction, evaluation and export work; emovox heads, freezing, LoRA and the feature
cache need a family emovox knows, and say so."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...data.audio import SAMPLE_RATE
from ...errors import BadConfig
from .base import Backbone


class GenericFamily(Backbone):
    family = "generic"

    def __init__(self, model_type: str, input_name: str = "input_values", supported: str = ""):
        self.model_types = (model_type,)
        self.input_name = input_name
        self._supported = supported

    def _refuse(self, what: str):
        raise BadConfig(f"{what} needs an encoder family emovox knows ({self._supported}); "
                        f"model type {self.model_types[0]!r} can only be scored as it is")

    def uses_attention_mask(self, feature_extractor: Any) -> bool:
        return False  # no padding emovox did not do itself: batches hold equal shapes only

    def model_input(self, feature_extractor: Any, wave: np.ndarray) -> np.ndarray:
        if feature_extractor is None:
            self._refuse("a model folder without preprocessor_config.json")
        out = feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="np")
        name = self.input_name if self.input_name in out else next(iter(out.keys()))
        return np.asarray(out[name][0], dtype=np.float32)

    def default_feature_extractor(self, config: Any) -> Any:
        self._refuse("a model folder without preprocessor_config.json")

    def frame_mask(self, encoder: Any, n_frames: int, attention_mask: Any | None, batch: int) -> Any:
        self._refuse("pooling over frames")

    def encode(self, encoder: Any, inputs: Any, attention_mask: Any | None, *, all_layers: bool):
        self._refuse("emovox heads and the feature cache")

    def freeze_front_end(self, encoder: Any) -> None:
        self._refuse("model.freeze_feature_encoder")

    def layers(self, encoder: Any) -> list:
        self._refuse("model.freeze_layers and LoRA")
