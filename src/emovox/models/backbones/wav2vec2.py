"""The wav2vec2 family: wav2vec2, HuBERT, WavLM and data2vec-audio.

Raw 16 kHz waves in, normalised per clip by ``Wav2Vec2FeatureExtractor``; a convolutional
feature encoder (the front end, 320 samples per frame) below a transformer. Layer-norm models
take an attention mask, so clips of any length share a batch; group-norm models
(wav2vec2-base, HuBERT-base) take none and their group norm would see padding, so they are only
batched with clips of equal length (the feature extractor's ``return_attention_mask`` says which).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...data.audio import SAMPLE_RATE
from .base import Backbone


class Wav2Vec2Family(Backbone):
    family = "wav2vec2"
    model_types = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
    input_name = "input_values"

    def uses_attention_mask(self, feature_extractor: Any) -> bool:
        return bool(getattr(feature_extractor, "return_attention_mask", True))

    def model_input(self, feature_extractor: Any, wave: np.ndarray) -> np.ndarray:
        if feature_extractor is None:
            return np.asarray(wave, dtype=np.float32)
        out = feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_attention_mask=False)
        return np.asarray(out["input_values"][0], dtype=np.float32)

    def frame_mask(self, encoder: Any, n_frames: int, attention_mask: Any | None, batch: int) -> Any:
        import torch

        if attention_mask is None:
            return torch.ones(batch, n_frames, dtype=torch.bool)
        return encoder._get_feature_vector_attention_mask(n_frames, attention_mask).bool()

    def encode(self, encoder: Any, inputs: Any, attention_mask: Any | None, *, all_layers: bool):
        import torch

        out = encoder(inputs, attention_mask=attention_mask, output_hidden_states=all_layers, return_dict=True)
        last = out.last_hidden_state
        layers = torch.stack(out.hidden_states, dim=1) if all_layers else None
        mask = self.frame_mask(encoder, last.shape[1], attention_mask, last.shape[0]).to(last.device)
        return last, layers, mask

    def freeze_front_end(self, encoder: Any) -> None:
        if hasattr(encoder, "freeze_feature_encoder"):
            encoder.freeze_feature_encoder()
            return
        for p in encoder.feature_extractor.parameters():
            p.requires_grad = False

    def layers(self, encoder: Any) -> list:
        return list(encoder.encoder.layers)

    def below_layers(self, encoder: Any) -> list:
        """Feature projection, positional convolution, the masked-frame embedding and, in post-norm
        encoders, the encoder's input layer norm (applied before the first layer there)."""
        below = [getattr(encoder, "feature_projection", None), getattr(encoder.encoder, "pos_conv_embed", None)]
        if not getattr(encoder.config, "do_stable_layer_norm", False):
            below.append(getattr(encoder.encoder, "layer_norm", None))
        if getattr(encoder, "masked_spec_embed", None) is not None:
            below.append(encoder.masked_spec_embed)
        return [m for m in below if m is not None]

    def default_feature_extractor(self, config: Any):
        """Transformers' rule for this family: layer-norm encoders take an attention mask and
        group-norm ones do not; waves are normalised to zero mean and unit variance."""
        from transformers import Wav2Vec2FeatureExtractor

        return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                                        do_normalize=True,
                                        return_attention_mask=getattr(config, "feat_extract_norm", "group") == "layer")
