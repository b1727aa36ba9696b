"""Classification heads beyond the stock one: attentive statistics pooling, learned layer weighting
and the multi-task emotion + intensity head, wrapped with an ``AutoModel`` backbone.

The wrapped model takes and returns what ``AutoModelForAudioClassification`` does
(``input_values``, ``attention_mask``, ``labels`` -> ``SequenceClassifierOutput``), so the Trainer,
``evaluate`` and ``predict`` need no special case. Frames beyond a clip's length never reach a
pooling: the backbone layer (``models.backbones``) turns the input mask into a frame mask.

A run dir holding such a model has the backbone's ``config.json`` (with the labels),
``emovox_head.json`` (this head's settings and the label scheme) and ``emovox_model.safetensors``.
The weights file deliberately is not ``model.safetensors``: a stock loader
(``transformers.pipeline``) fails loudly on the dir instead of loading a random head.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import BadConfig, BadRunDir
from ..labels import UNKNOWN_INTENSITY, LabelScheme
from ..config import POOLINGS
from .backbones import backbone_for, carry_family

HEAD_FILE = "emovox_head.json"
WEIGHTS_FILE = "emovox_model.safetensors"
HEAD_FORMAT = 1


@dataclass
class HeadConfig:
    """What the head needs besides the backbone; saved as ``emovox_head.json``.

    Attributes:
        pooling: "mean", "attentive" (attention-weighted mean and standard deviation), or "stats"
            (mean and standard deviation of every layer over real frames, concatenated; no projector).
        layer_weighting: Softmax-weighted sum of all hidden layers before pooling (SUPERB style).
        multitask: Emotion, intensity-specified and intensity-level heads (composite schemes).
        intensity_loss_weight: Weight of both intensity losses against the emotion loss.
        proj_size: Width of the frame projection before pooling.
        scheme: ``LabelScheme.to_dict()`` of the run.
        skip_states: Stats pooling: the first N hidden states get zero weight in the classifier
            (``model.stats_skip_states``; ``training.feature_scaling`` keeps them at zero).
    """

    pooling: str = "mean"
    layer_weighting: bool = False
    multitask: bool = False
    intensity_loss_weight: float = 1.0
    proj_size: int = 256
    scheme: dict[str, Any] = field(default_factory=dict)
    skip_states: int = 0
    format: int = HEAD_FORMAT


def _init_linear(layer: nn.Linear, std: float) -> nn.Linear:
    """Initialise like Transformers' heads (normal(0, initializer_range), zero bias)."""
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class LayerWeighting(nn.Module):
    """Learned softmax weights over the backbone's hidden layers (uniform at start)."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        """Mix ``layers`` [B, L, ...] over L."""
        w = torch.softmax(self.weights, dim=0).view(1, -1, *([1] * (layers.dim() - 2)))
        return (layers * w).sum(dim=1)


class MeanPooling(nn.Module):
    """Mean over the real frames of each clip."""

    out_factor = 1

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling: attention-weighted mean and standard deviation over frames
    (Okabe et al., 2018); padded frames get exactly zero weight."""

    out_factor = 2

    def __init__(self, dim: int, attention_dim: int = 128, std: float = 0.02):
        super().__init__()
        self.attention = nn.Sequential(_init_linear(nn.Linear(dim, attention_dim), std), nn.Tanh(),
                                       _init_linear(nn.Linear(attention_dim, 1), std))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = h.masked_fill(~mask.unsqueeze(-1), 0.0)
        scores = self.attention(h).squeeze(-1).masked_fill(~mask, torch.finfo(h.dtype).min)
        alpha = torch.softmax(scores, dim=1).masked_fill(~mask, 0.0).unsqueeze(-1)
        mean = (alpha * h).sum(dim=1)
        var = (alpha * h * h).sum(dim=1) - mean * mean
        return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=-1)


class LayerStatsPooling(nn.Module):
    """Mean and standard deviation over each clip's real frames of every layer: [B, L, T, H] ->
    [B, 2, L, H] (means, then standard deviations; the cached-feature layout)."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return layer_stats(h, mask)


def layer_stats(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Means and (population) standard deviations of ``h`` [B, L, T, H] over the frames where
    ``mask`` [B, T] is true: [B, 2, L, H]."""
    m = mask[:, None, :, None].to(h.dtype)
    n = m.sum(dim=2).clamp(min=1.0)
    mean = (h * m).sum(dim=2) / n
    var = (((h - mean[:, :, None]) * m) ** 2).sum(dim=2) / n
    return torch.stack([mean, var.clamp(min=0.0).sqrt()], dim=1)


class FactorTables(nn.Module):
    """Where each composite label sits among the factors: emotion id, intensity specified (not
    XX), intensity level id (0 for XX). Buffers only, rebuilt from the scheme, never saved."""

    def __init__(self, scheme: LabelScheme):
        super().__init__()
        if not scheme.composite:
            raise BadConfig(f"model.multitask needs a composite (emotion_intensity) scheme; {scheme.name!r} is "
                            f"flat ({', '.join(scheme.labels)}); use e.g. crema-d-21 or ravdess-15")
        pairs = [scheme.split(lab) for lab in scheme.labels]
        self.emotions = list(dict.fromkeys(e for e, _ in pairs))
        self.levels = list(dict.fromkeys(i for _, i in pairs if i not in UNKNOWN_INTENSITY))
        if not self.levels:
            raise BadConfig(f"model.multitask: scheme {scheme.name!r} has no specified intensity "
                            f"(all are {', '.join(sorted(UNKNOWN_INTENSITY - {''}))}); nothing to learn a level from")
        spec = [i not in UNKNOWN_INTENSITY for _, i in pairs]
        self.register_buffer("emotion", torch.tensor([self.emotions.index(e) for e, _ in pairs]), persistent=False)
        self.register_buffer("specified", torch.tensor(spec), persistent=False)
        self.register_buffer("level", torch.tensor([self.levels.index(i) if s else 0
                                                    for (_, i), s in zip(pairs, spec)]), persistent=False)


class MultitaskHead(nn.Module):
    """Three linear heads on the pooled vector and their composition into composite-label logits.

    The composite logit of label (e, i) is log p(e) + log p(specified) + log p(level | specified)
    (the level term only when i is specified), renormalised over the scheme's labels: the
    factors' distribution conditioned on the label being a valid one (no NEU_HI in crema-d-21).
    """

    def __init__(self, dim: int, scheme: LabelScheme, *, loss_weight: float = 1.0, std: float = 0.02):
        super().__init__()
        self.tables = FactorTables(scheme)
        self.emotion = _init_linear(nn.Linear(dim, len(self.tables.emotions)), std)
        self.specified = _init_linear(nn.Linear(dim, 2), std)
        self.level = _init_linear(nn.Linear(dim, len(self.tables.levels)), std)
        self.loss_weight = loss_weight

    def factors(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of (emotion, specified [no, yes], level)."""
        return self.emotion(pooled), self.specified(pooled), self.level(pooled)

    def composite(self, factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Log-probabilities [B, C] over the scheme's labels (logsumexp over C is 0)."""
        e, s, lv = (F.log_softmax(x, dim=-1) for x in factors)
        t = self.tables
        score = e[:, t.emotion] + s[:, t.specified.long()] + torch.where(t.specified, lv[:, t.level], 0.0)
        return F.log_softmax(score, dim=-1)

    def loss(self, factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """CE(emotion) + w * (CE(specified) + CE(level) over the rows whose intensity is specified)."""
        e, s, lv = factors
        t = self.tables
        spec = t.specified[labels]
        level_ce = F.cross_entropy(lv, t.level[labels], reduction="none")
        level = torch.where(spec, level_ce, 0.0).sum() / spec.sum().clamp(min=1)
        intensity = F.cross_entropy(s, spec.long()) + level
        return F.cross_entropy(e, t.emotion[labels]) + self.loss_weight * intensity

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None = None):
        f = self.factors(pooled)
        return self.composite(f), (self.loss(f, labels) if labels is not None else None)


class FlatHead(nn.Module):
    """One linear layer over the scheme's labels, cross-entropy loss."""

    def __init__(self, dim: int, n_labels: int, *, std: float = 0.02):
        super().__init__()
        self.linear = _init_linear(nn.Linear(dim, n_labels), std)

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None = None):
        logits = self.linear(pooled)
        return logits, (F.cross_entropy(logits, labels) if labels is not None else None)


class EmovoxForAudioClassification(nn.Module):
    """An ``AutoModel`` backbone with an emovox head; called like ``AutoModelForAudioClassification``.

    Args:
        backbone: A Transformers audio encoder (wav2vec2, HuBERT, WavLM, data2vec-audio).
        head: Head settings; ``head.scheme`` gives the labels.

    Raises:
        BadConfig: unknown pooling, an encoder family emovox does not know, or multitask on a flat scheme.
    """

    def __init__(self, backbone: nn.Module, head: HeadConfig):
        super().__init__()
        if head.pooling not in POOLINGS:
            raise BadConfig(f"unknown model.pooling {head.pooling!r}; valid: {', '.join(POOLINGS)}")
        self.family = backbone_for(backbone)
        self.main_input_name = self.family.input_name
        self.backbone = backbone
        carry_family(self, self.family)  # the model and its encoder carry it (backbones.family_of)
        self.head_config = head
        scheme = LabelScheme.from_dict(head.scheme)
        cfg, std = backbone.config, float(getattr(backbone.config, "initializer_range", 0.02))
        hidden, n_layers = self.family.hidden_size(cfg), self.family.n_layers(cfg)
        self.stats = head.pooling == "stats"
        if self.stats and head.layer_weighting:
            raise BadConfig("model.pooling=stats already uses every layer (their statistics, concatenated); "
                            "set model.layer_weighting=false")
        self.layer_weights = LayerWeighting(n_layers + 1) if head.layer_weighting else None
        if not 0 <= head.skip_states < n_layers + 2:
            raise BadConfig(f"model.stats_skip_states={head.skip_states}: a stats head over {n_layers + 2} states can "
                            f"leave out 0 to {n_layers + 1} of them")
        if self.stats:  # a probe: the classifier reads every layer's statistics directly
            self.projector, self.pool = None, LayerStatsPooling()
            dim = 2 * (n_layers + 2) * hidden
        else:
            self.projector = _init_linear(nn.Linear(hidden, head.proj_size), std)
            self.pool = AttentiveStatsPooling(head.proj_size, std=std) if head.pooling == "attentive" else MeanPooling()
            dim = head.proj_size * self.pool.out_factor
        self.classifier = (MultitaskHead(dim, scheme, loss_weight=head.intensity_loss_weight, std=std)
                           if head.multitask else FlatHead(dim, len(scheme), std=std))

    @property
    def config(self):
        """The backbone's config (it carries ``id2label``/``label2id``)."""
        return self.backbone.config

    @property
    def base_model(self) -> nn.Module:
        """The encoder, under the name Transformers models use for it."""
        return self.backbone

    def forward(self, input_values: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, input_features: torch.Tensor | None = None, **_: Any):
        """Logits over the scheme's labels (and the loss when ``labels`` are given). The input
        comes under the family's name (``input_values`` or ``input_features``)."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        inputs = input_values if input_values is not None else input_features
        last, layers, mask = self.family.encode(self.backbone, inputs, attention_mask,
                                                all_layers=self.layer_weights is not None or self.stats)
        if self.stats:
            pooled = self.pool(torch.cat([layers, last[:, None]], dim=1), mask).flatten(1)
        else:
            h = self.layer_weights(layers) if self.layer_weights is not None else last
            pooled = self.pool(self.projector(h), mask)
        logits, loss = self.classifier(pooled, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def forward_pooled(self, stats: torch.Tensor, labels: torch.Tensor | None = None):
        """The same logits from utterance statistics [B, 2, L+2, H] (frame means, then standard
        deviations, of the L+1 hidden states and the encoder output: ``training.feature_cache``).
        Exact for mean pooling (the projector and the layer mix are affine, so they commute with
        the mean) and for stats pooling (the statistics are the pooled vector). Used on cached features.

        Raises:
            BadConfig: attentive pooling, which needs the frames themselves.
        """
        from transformers.modeling_outputs import SequenceClassifierOutput

        if self.stats:
            logits, loss = self.classifier(stats.flatten(1), labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)
        if self.head_config.pooling != "mean":
            raise BadConfig(f"model.pooling={self.head_config.pooling!r} needs every frame, so it cannot train on "
                            "cached utterance features; use model.pooling=mean or stats, or model.cache_features=false")
        means = stats[:, 0]
        h = self.layer_weights(means[:, :-1]) if self.layer_weights is not None else means[:, -1]
        logits, loss = self.classifier(self.projector(h), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Checkpoint the encoder's activations (the Trainer calls this for ``gradient_checkpointing``)."""
        self.backbone.gradient_checkpointing_enable(**kwargs)

    def save_pretrained(self, save_directory: str | Path, state_dict: dict | None = None, **_: Any) -> Path:
        """Write ``config.json`` (backbone + labels), ``emovox_head.json`` and the weights."""
        from safetensors.torch import save_file

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(out)
        (out / HEAD_FILE).write_text(json.dumps(asdict(self.head_config), indent=2))
        state = state_dict if state_dict is not None else self.state_dict()
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(out / WEIGHTS_FILE),
                  metadata={"format": "pt"})
        return out

    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> "EmovoxForAudioClassification":
        """Rebuild from a directory written by :meth:`save_pretrained` (eval mode).

        Raises:
            BadRunDir: a file is missing or the weights do not fit the saved settings.
        """
        from safetensors.torch import load_file
        from transformers import AutoConfig

        run_dir = Path(run_dir)
        for name in ("config.json", HEAD_FILE, WEIGHTS_FILE):
            if not (run_dir / name).is_file():
                raise BadRunDir(f"{run_dir}: custom-head run dir has no {name} "
                                f"(expected config.json, {HEAD_FILE}, {WEIGHTS_FILE})")
        head = HeadConfig(**json.loads((run_dir / HEAD_FILE).read_text()))
        config = AutoConfig.from_pretrained(run_dir)
        model = cls(backbone_for(config).encoder_from_config(config), head)
        try:
            model.load_state_dict(load_file(str(run_dir / WEIGHTS_FILE)), strict=True)
        except RuntimeError as exc:
            raise BadRunDir(f"{run_dir / WEIGHTS_FILE}: weights do not match {HEAD_FILE} "
                            f"({str(exc).splitlines()[0]})") from None
        return model.eval()


def pooled_logits(model: nn.Module, stats: torch.Tensor, labels: torch.Tensor | None = None):
    """Logits from utterance statistics [B, 2, L+2, H] (frame means then standard deviations of the
    hidden states and the encoder output) for a stock classifier or an
    :class:`EmovoxForAudioClassification` with mean or stats pooling: exactly what
    ``model(input_values)`` gives (the layer mix, projector and mean pooling are all affine)."""
    if isinstance(model, EmovoxForAudioClassification):
        return model.forward_pooled(stats, labels)
    layer_means = stats[:, 0]
    from transformers.modeling_outputs import SequenceClassifierOutput

    if getattr(model.config, "use_weighted_layer_sum", False):
        w = torch.softmax(model.layer_weights, dim=0).view(1, -1, 1)
        h = (layer_means[:, :-1] * w).sum(dim=1)
    else:
        h = layer_means[:, -1]
    logits = model.classifier(model.projector(h))
    return SequenceClassifierOutput(loss=F.cross_entropy(logits, labels) if labels is not None else None,
                                    logits=logits)
