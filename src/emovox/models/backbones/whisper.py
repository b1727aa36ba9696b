"""Whisper's encoder as an emotion backbone, each clip encoded at its own length.

Whisper itself pads every input to 30 s of log-mel frames (its encoder refuses anything else).
For 2-5 s emotion clips that is 6-15x the compute, so emovox runs the encoder's own modules on
the real frames only: the positional embeddings are cut to the frames used, and in a padded batch
padded frames are zeroed after the first convolution (so the second sees what it sees on the
clip alone) and masked out of every attention and every pooling. A clip's output is then the
same alone or in any batch.

A run dir saves the stock ``WhisperForAudioClassification`` with a shorter window
(``chunk_length`` = the training length rounded up to whole seconds, positional embeddings cut to
match), so ``transformers.pipeline("audio-classification")`` loads it; the pipeline pads each clip
to that window and averages over the padded frames too, so its scores differ from emovox's on
shorter clips (equal at the window length). emovox predicts longer recordings in windows of that
length.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from ...data.audio import SAMPLE_RATE
from .base import Backbone

MEL_HOP = 160  # samples per log-mel frame; the encoder halves the frame rate (50 per second)
PAD_FLAG = "emovox_pad_to_window"  # saved in preprocessor_config.json, so predict does as training did


class WhisperFamily(Backbone):
    family = "whisper"
    model_types = ("whisper",)
    input_name = "input_features"
    int8_smoothing = True  # outlier frames and channels (measured: inference/export.py, SMOOTHED_KEEP_FP32)

    def uses_attention_mask(self, feature_extractor: Any) -> bool:
        return True  # emovox masks padded frames itself

    def model_input(self, feature_extractor: Any, wave: np.ndarray) -> np.ndarray:
        """Log-mel frames [mels, len // 160] of the clip alone (no padding to 30 s); with
        ``pad_to_window`` (saved in the feature extractor), of the clip padded or cut to the window."""
        if getattr(feature_extractor, PAD_FLAG, False):
            n = int(feature_extractor.n_samples)
            wave = np.pad(wave[:n], (0, max(0, n - len(wave))))
        n = max(len(wave), MEL_HOP)
        out = feature_extractor(np.pad(wave, (0, n - len(wave))), sampling_rate=SAMPLE_RATE, return_tensors="np",
                                padding="longest", truncation=False, return_attention_mask=False)
        return np.asarray(out["input_features"][0][:, : n // MEL_HOP], dtype=np.float32)

    def default_feature_extractor(self, config: Any) -> Any:
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=int(getattr(config, "num_mel_bins", 80)))

    def frame_mask(self, encoder: Any, n_frames: int, attention_mask: Any | None, batch: int) -> Any:
        import torch

        if attention_mask is None:
            return torch.ones(batch, n_frames, dtype=torch.bool)
        real = (attention_mask.sum(dim=-1) + 1) // 2  # stride-2 second convolution
        return torch.arange(n_frames, device=real.device)[None, :] < real[:, None]

    def encode(self, encoder: Any, inputs: Any, attention_mask: Any | None, *, all_layers: bool):
        import torch

        h, mask = self.embed(encoder, inputs, attention_mask)
        states = [h, *self.run_layers(encoder, h, mask if attention_mask is not None else None)]
        last = encoder.layer_norm(states[-1])
        states[-1] = last  # as Whisper returns its hidden states: the last one after the final norm
        return last, (torch.stack(states, dim=1) if all_layers else None), mask

    def embed(self, encoder: Any, inputs: Any, attention_mask: Any | None):
        """The input to the first layer ``[B, T, H]`` and the frame mask: ``encode`` up to its layers,
        so that a caller can run the layers in parts (``training.layer_cache``: the lower layers
        once, the upper ones tuned)."""
        from torch.nn import functional as F

        mel_mask = None if attention_mask is None else attention_mask.to(inputs.dtype)[:, None, :]
        x = F.gelu(encoder.conv1(inputs))
        if mel_mask is not None:
            x = x * mel_mask
        x = F.gelu(encoder.conv2(x)).permute(0, 2, 1)
        n = x.shape[1]
        limit = encoder.embed_positions.num_embeddings
        if n > limit:
            raise ValueError(f"{n} encoder frames exceed Whisper's {limit} positions ({limit / 50:g} s)")
        h = F.dropout(x + encoder.embed_positions.weight[:n], p=encoder.dropout, training=encoder.training)
        return h, self.frame_mask(encoder, n, attention_mask, h.shape[0]).to(h.device)

    def run_layers(self, encoder: Any, h: Any, mask: Any | None, start: int = 0, stop: int | None = None) -> list:
        """The outputs of layers ``start .. stop - 1`` (0-based) on ``h``, the input of layer ``start``
        (before the final layer norm), attending only to the frames of the bool ``mask`` [B, T]
        (None: every frame, no mask in the graph)."""
        import torch

        additive = None
        if mask is not None:  # always with an attention mask, so a traced graph keeps it
            additive = torch.zeros(mask.shape, dtype=h.dtype, device=h.device)
            additive = additive.masked_fill(~mask, torch.finfo(h.dtype).min)[:, None, None, :]
        states = []
        for layer in list(encoder.layers)[start:stop]:
            if encoder.training and encoder.layerdrop > 0 and float(torch.rand([])) < encoder.layerdrop:
                states.append(h)
                continue
            h = _run_layer(layer, h, additive)
            states.append(h)
        return states

    def n_layers(self, config: Any) -> int:
        return int(config.encoder_layers)

    def hidden_size(self, config: Any) -> int:
        return int(config.d_model)

    def encoder_of(self, classifier: Any) -> Any:
        if type(classifier).__name__ == "WhisperEncoder":
            return classifier
        inner = getattr(classifier, "backbone", None)  # an emovox head around the bare encoder
        return inner if inner is not None else classifier.encoder

    def encoder_from_pretrained(self, name: Any, config: Any) -> Any:
        from transformers import WhisperForAudioClassification

        return WhisperForAudioClassification.from_pretrained(name, config=config).encoder

    def encoder_from_config(self, config: Any) -> Any:
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder(config)

    def freeze_front_end(self, encoder: Any) -> None:
        for module in (encoder.conv1, encoder.conv2, encoder.embed_positions):
            for p in module.parameters():
                p.requires_grad = False

    def layers(self, encoder: Any) -> list:
        return list(encoder.layers)

    def classifier_class(self, stock: type) -> type:
        return own_length_classifier()

    def configure_inputs(self, feature_extractor: Any, *, window_seconds: float, pad_to_window: bool) -> None:
        setattr(feature_extractor, PAD_FLAG, bool(pad_to_window))
        if pad_to_window:
            _set_window(feature_extractor, _whole_seconds(window_seconds))

    def pipeline_differences(self, settings: dict[str, Any]) -> list[str]:
        out = super().pipeline_differences(settings)
        if not settings.get(PAD_FLAG):
            seconds = settings.get("chunk_length", "its")
            out.append(f"the pipeline pads every clip to the saved {seconds} s window and averages the padding into "
                       "the pooled features, while emovox encodes each clip at its own length and pools over real "
                       "frames (train with model.pad_to_window=true for a run dir the pipeline reproduces exactly)")
        return out

    def max_seconds(self, config: Any) -> float | None:
        return int(config.max_source_positions) * 2 * MEL_HOP / SAMPLE_RATE

    def prepare_to_save(self, model: Any, feature_extractor: Any, *, window_seconds: float) -> None:
        """Cut the saved window to ``window_seconds`` (whole seconds): ``chunk_length`` of the
        feature extractor and the encoder's positions, so ``pipeline`` pads to it, not to 30 s."""
        import torch

        seconds = _whole_seconds(window_seconds)
        positions = seconds * SAMPLE_RATE // MEL_HOP // 2
        encoder = self.encoder_of(model)
        if encoder.embed_positions.num_embeddings > positions:
            weight = encoder.embed_positions.weight.data[:positions].clone()
            encoder.embed_positions = torch.nn.Embedding(positions, weight.shape[1])
            encoder.embed_positions.weight.data.copy_(weight)
            encoder.embed_positions.requires_grad_(False)
        model.config.max_source_positions = encoder.embed_positions.num_embeddings
        _set_window(feature_extractor, seconds)


def _whole_seconds(seconds: float) -> int:
    return max(1, min(30, math.ceil(seconds - 1e-9)))


def _set_window(feature_extractor: Any, seconds: int) -> None:
    """The length Whisper's feature extractor pads and cuts to (its ``chunk_length``)."""
    feature_extractor.chunk_length = seconds
    feature_extractor.n_samples = seconds * SAMPLE_RATE
    feature_extractor.nb_max_frames = feature_extractor.n_samples // feature_extractor.hop_length


def _run_layer(layer: Any, h: Any, additive: Any) -> Any:
    """One encoder layer on every release (4.x wants ``layer_head_mask`` and returns a tuple)."""
    if "layer_head_mask" in _params(type(layer)):
        return layer(h, additive, layer_head_mask=None)[0]
    out = layer(h, additive)
    return out[0] if isinstance(out, tuple) else out


_PARAMS: dict[type, set] = {}


def _params(cls: type) -> set:
    if cls not in _PARAMS:
        _PARAMS[cls] = set(inspect.signature(cls.forward).parameters)
    return _PARAMS[cls]


_CLASSIFIER: list[type] = []


def own_length_classifier() -> type:
    """``WhisperForAudioClassification`` whose forward encodes at the clip's own length, with a
    mask, and pools over real frames only. Its saved files are the stock class's. Built on first
    use, so importing emovox does not import transformers."""
    if _CLASSIFIER:
        return _CLASSIFIER[0]
    import torch
    from transformers import WhisperForAudioClassification
    from transformers.modeling_outputs import SequenceClassifierOutput

    family = WhisperFamily()

    class WhisperOwnLength(WhisperForAudioClassification):
        def forward(self, input_features=None, attention_mask=None, labels=None, **_: Any):
            weighted = bool(self.config.use_weighted_layer_sum)
            last, layers, mask = family.encode(self.encoder, input_features, attention_mask, all_layers=weighted)
            if weighted:
                w = torch.softmax(self.layer_weights, dim=-1).view(1, -1, 1, 1)
                last = (layers * w).sum(dim=1)
            h = self.projector(last)
            m = mask[..., None].to(h.dtype)
            logits = self.classifier((h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0))
            loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)

        def save_pretrained(self, save_directory, *args, **kwargs):
            self.config.architectures = ["WhisperForAudioClassification"]
            return super().save_pretrained(save_directory, *args, **kwargs)

    WhisperOwnLength.__name__ = "WhisperForAudioClassification"
    _CLASSIFIER.append(WhisperOwnLength)
    return WhisperOwnLength
