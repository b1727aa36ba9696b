"""Backbones and heads: from a hub id, a local directory, or a size preset built offline; freezing,
per-part learning rates, LoRA, and saving/loading trained models.

Presets build a randomly initialised Wav2Vec2 so tests and the demo never touch the network;
``base`` is the real wav2vec2-base architecture (and feature extractor settings).

Mean pooling without the multi-task head is the stock ``AutoModelForAudioClassification`` (with
``use_weighted_layer_sum`` for ``layer_weighting``), so such a run dir loads in
``transformers.pipeline``; attentive pooling and the multi-task head are
:class:`emovox.heads.EmovoxForAudioClassification`. :func:`load_trained` loads either kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import SAMPLE_RATE
from .errors import BadConfig, BadRunDir
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
POOLINGS = ("mean", "attentive")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
# Transformers' rule (Trainer.get_decay_parameter_names): no weight decay for biases and norms.
_NO_DECAY = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


@dataclass
class ModelConfig:
    """The ``model.*`` config section.

    Attributes:
        name: Preset size, local directory or hub id.
        freeze_feature_encoder: No gradient into the convolutional feature encoder.
        freeze_layers: Freeze the first N transformer layers (and, when N > 0, the feature
            projection, positional convolution and masked-frame embedding below them).
        freeze_backbone: Linear probe: only the head trains.
        cache_features: With ``freeze_backbone``, encode each clip once, cache per-layer utterance
            means on disk and train the head on them (``emovox.features``); mean pooling only.
        pooling: "mean" (the stock Transformers head) or "attentive" (attentive statistics pooling).
        layer_weighting: Learned softmax-weighted sum of all hidden layers before pooling.
        multitask: Emotion + intensity-specified + intensity-level heads (composite schemes);
            the model still outputs ordinary logits over the scheme's labels.
        intensity_loss_weight: Weight of the two intensity losses in the multi-task loss.
        lora_r: LoRA rank; 0 disables LoRA. The backbone is frozen except the LoRA matrices (not
            in the first ``freeze_layers`` layers); the head trains fully; saving merges them.
        lora_alpha: LoRA scaling numerator (scale = alpha / r).
        lora_dropout: Dropout on the LoRA branch.
        lora_target_modules: Module names that get LoRA matrices.
        gradient_checkpointing: Trade compute for memory in the backbone.
        hidden_dropout ... mask_time_prob: Overrides of the backbone config (None keeps it).
    """

    name: str = "tiny"
    freeze_feature_encoder: bool = True
    freeze_layers: int = 0
    freeze_backbone: bool = False
    cache_features: bool = True
    pooling: str = "mean"
    layer_weighting: bool = False
    multitask: bool = False
    intensity_loss_weight: float = 1.0
    lora_r: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    gradient_checkpointing: bool = False
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    activation_dropout: float | None = None
    feat_proj_dropout: float | None = None
    final_dropout: float | None = None
    layerdrop: float | None = None
    mask_time_prob: float | None = None

    @property
    def custom_head(self) -> bool:
        """True when the stock Transformers head cannot express these settings."""
        return self.pooling != "mean" or bool(self.multitask)


def check_model_config(cfg: ModelConfig, scheme: LabelScheme | None = None) -> None:
    """Reject settings that are unknown or contradict each other, naming the key and valid values.

    Raises:
        BadConfig: the first problem found.
    """
    if cfg.pooling not in POOLINGS:
        raise BadConfig(f"unknown model.pooling {cfg.pooling!r}; valid: {', '.join(POOLINGS)}")
    for key in ("freeze_layers", "lora_r"):
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadConfig(f"model.{key}={value!r} must be a whole number >= 0")
    if cfg.lora_r and cfg.freeze_backbone:
        raise BadConfig(f"model.lora_r={cfg.lora_r} trains LoRA matrices inside the backbone, but "
                        "model.freeze_backbone=true trains the head only; set one of them off")
    if cfg.multitask and scheme is not None and not scheme.composite:
        raise BadConfig(f"model.multitask needs a composite (emotion_intensity) scheme; {scheme.name!r} is flat "
                        "(use e.g. data.scheme=crema-d-21)")
    if float(cfg.intensity_loss_weight) < 0:
        raise BadConfig(f"model.intensity_loss_weight={cfg.intensity_loss_weight!r} must be >= 0")
    if isinstance(cfg.lora_target_modules, str) or not cfg.lora_target_modules:
        raise BadConfig(f"model.lora_target_modules={cfg.lora_target_modules!r} must be a non-empty list "
                        f"of module names, e.g. {LORA_TARGETS}")


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

    A pretrained checkpoint gets a fresh head sized for ``scheme``; dropout overrides from ``cfg``
    go into the model config before the weights load; then freezing, LoRA and gradient
    checkpointing are applied as ``cfg`` says.

    Raises:
        BadConfig: the name is neither a preset, a directory nor a loadable hub id; bad settings.
    """
    import torch

    cfg = cfg or ModelConfig(name=name)
    check_model_config(cfg, scheme)
    overrides = {k: getattr(cfg, k) for k in DROPOUT_KEYS if getattr(cfg, k) is not None}
    torch.manual_seed(seed)
    if cfg.custom_head:
        from .heads import EmovoxForAudioClassification, HeadConfig

        backbone, fe = _load_pretrained(name, scheme, overrides, stock=False)
        head = HeadConfig(pooling=cfg.pooling, layer_weighting=bool(cfg.layer_weighting),
                          multitask=bool(cfg.multitask), intensity_loss_weight=float(cfg.intensity_loss_weight),
                          proj_size=int(getattr(backbone.config, "classifier_proj_size", 256)),
                          scheme=scheme.to_dict())
        model = EmovoxForAudioClassification(backbone, head)
    else:
        if cfg.layer_weighting:
            overrides["use_weighted_layer_sum"] = True
        model, fe = _load_pretrained(name, scheme, overrides, stock=True)
        if cfg.layer_weighting and not hasattr(model, "layer_weights"):
            raise BadConfig(f"model.layer_weighting is not supported by {type(model).__name__}; use a "
                            "wav2vec2, HuBERT, WavLM or data2vec-audio model")
    apply_freezing(model, cfg)
    if cfg.lora_r:
        add_lora(model, cfg)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, fe


def _load_pretrained(name: str, scheme: LabelScheme, overrides: dict[str, Any], *, stock: bool):
    """A stock classifier (``stock``) or a bare ``AutoModel`` encoder, and the feature extractor.

    Raises:
        BadConfig: the name cannot be loaded.
    """
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification)

    auto = AutoModelForAudioClassification if stock else AutoModel
    if name in PRESETS:
        return auto.from_config(preset_config(name, scheme, **overrides)), preset_feature_extractor(name)
    try:
        config = AutoConfig.from_pretrained(name, **_label_kwargs(scheme), **overrides)
        fe = AutoFeatureExtractor.from_pretrained(name)
        state = _custom_run_backbone(Path(name))
        if state is None:
            return auto.from_pretrained(name, config=config, ignore_mismatched_sizes=True), fe
        model = auto.from_config(config)
        (backbone_of(model) if stock else model).load_state_dict(state)
        return model, fe
    except (OSError, ValueError) as exc:
        raise BadConfig(
            f"cannot load model {name!r}: {str(exc).splitlines()[0]} "
            f"(use a local directory, a reachable hub id, or a size: {', '.join(PRESETS)})"
        ) from None


def _custom_run_backbone(path: Path) -> dict | None:
    """The backbone weights of a custom-head run dir (to start a new run from it), else None."""
    from .heads import HEAD_FILE, WEIGHTS_FILE

    if not (path / HEAD_FILE).is_file():
        return None
    from safetensors.torch import load_file

    prefix = "backbone."
    return {k[len(prefix):]: v for k, v in load_file(str(path / WEIGHTS_FILE)).items() if k.startswith(prefix)}


def backbone_of(model):
    """The encoder inside a classifier (stock or emovox head).

    Raises:
        BadConfig: the model has no separate encoder.
    """
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        raise BadConfig(f"{type(model).__name__} has no separate backbone to freeze or adapt")
    return base


def _encoder_layers(base) -> list:
    layers = getattr(getattr(base, "encoder", None), "layers", None)
    if layers is None:
        raise BadConfig(f"model.freeze_layers / LoRA layers need an encoder with .encoder.layers; "
                        f"{type(base).__name__} has none")
    return list(layers)


def apply_freezing(model, cfg: ModelConfig) -> None:
    """Apply ``freeze_feature_encoder``, ``freeze_layers`` and ``freeze_backbone`` from ``cfg``."""
    if cfg.freeze_feature_encoder or cfg.freeze_backbone:
        freeze_feature_encoder(model)
    if cfg.freeze_layers:
        freeze_layers(model, int(cfg.freeze_layers))
    if cfg.freeze_backbone:
        for p in backbone_of(model).parameters():
            p.requires_grad = False


def freeze_feature_encoder(model) -> None:
    """Stop gradients into the convolutional feature encoder (wav2vec2, HuBERT, WavLM, data2vec)."""
    base = getattr(model, "base_model", model)
    if hasattr(base, "freeze_feature_encoder"):
        base.freeze_feature_encoder()
        return
    for p in base.feature_extractor.parameters():
        p.requires_grad = False


def freeze_layers(model, n: int) -> None:
    """Freeze the first ``n`` transformer layers and everything between them and the feature encoder
    (feature projection, positional convolution, masked-frame embedding and, in post-norm encoders,
    the encoder's input layer norm).

    Raises:
        BadConfig: ``n`` is more than the model's layer count.
    """
    base = backbone_of(model)
    layers = _encoder_layers(base)
    if not 0 <= n <= len(layers):
        raise BadConfig(f"model.freeze_layers={n} but the model has {len(layers)} layers; valid: 0..{len(layers)}")
    if n == 0:
        return
    modules = [getattr(base, "feature_projection", None), getattr(base.encoder, "pos_conv_embed", None), *layers[:n]]
    if not getattr(base.config, "do_stable_layer_norm", False):
        modules.append(getattr(base.encoder, "layer_norm", None))  # applied before the first layer there
    params = [p for m in modules if m is not None for p in m.parameters()]
    if getattr(base, "masked_spec_embed", None) is not None:
        params.append(base.masked_spec_embed)
    for p in params:
        p.requires_grad = False


def param_groups(model, lr: float, head_lr: float | None = None, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: backbone at ``lr``, head (everything outside the backbone) at
    ``head_lr`` (default ``lr``); weight decay as Transformers applies it (not on biases and norms).
    Frozen parameters are left out. Each group has a ``name`` (backbone, head, ..._no_decay)."""
    from torch import nn
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, [nn.LayerNorm], _NO_DECAY))
    in_backbone = {id(p) for p in backbone_of(model).parameters()}
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(("backbone" if id(p) in in_backbone else "head", name in decay), []).append(p)
    rates = {"backbone": float(lr), "head": float(head_lr if head_lr is not None else lr)}
    return [{"params": ps, "lr": rates[part], "weight_decay": float(weight_decay) if d else 0.0,
             "name": part if d else f"{part}_no_decay"} for (part, d), ps in groups.items()]


def add_lora(model, cfg: ModelConfig) -> None:
    """Inject LoRA matrices into the backbone's attention projections (in place, peft).

    The backbone's own weights are frozen, the LoRA matrices train, the head is untouched (so it
    trains fully). The model stays a plain module: Trainer checkpoints hold every weight, and
    :func:`merge_lora` folds the matrices back for saving.

    Raises:
        BadConfig: no target module matched.
    """
    from peft import LoraConfig, inject_adapter_in_model

    base = backbone_of(model)
    n_layers = len(_encoder_layers(base))
    layers = list(range(int(cfg.freeze_layers), n_layers)) if cfg.freeze_layers else None
    lora = LoraConfig(r=int(cfg.lora_r), lora_alpha=float(cfg.lora_alpha), lora_dropout=float(cfg.lora_dropout),
                      target_modules=list(cfg.lora_target_modules), bias="none",
                      layers_to_transform=layers, layers_pattern="layers" if layers else None)
    try:
        inject_adapter_in_model(lora, base)
    except ValueError as exc:
        raise BadConfig(f"model.lora_target_modules={list(cfg.lora_target_modules)}: {str(exc).splitlines()[0]} "
                        f"(default {LORA_TARGETS})") from None
    for name, p in base.named_parameters():
        p.requires_grad = "lora_" in name


def merge_lora(model) -> int:
    """Fold LoRA matrices into their base weights and remove the LoRA layers (in place).

    Returns:
        How many layers were merged (0 for a model without LoRA).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
            merged += 1
    for m in model.modules():
        if "peft_config" in vars(m):
            del m.peft_config
    return merged


def save_trained(model, out: str | Path) -> Path:
    """Save a trained model as a run dir's model files (LoRA merged first) for :func:`load_trained`.

    A stock head writes ``save_pretrained`` files; an emovox head writes ``config.json``,
    ``emovox_head.json`` and ``emovox_model.safetensors``. Files of the other kind are removed.
    """
    from .heads import HEAD_FILE, WEIGHTS_FILE, EmovoxForAudioClassification

    out = Path(out)
    merge_lora(model)
    custom = isinstance(model, EmovoxForAudioClassification)
    stale = ("model.safetensors", "pytorch_model.bin") if custom else (HEAD_FILE, WEIGHTS_FILE)
    for name in stale:
        (out / name).unlink(missing_ok=True)
    model.save_pretrained(out)
    return out


def load_trained(run_dir: str | Path):
    """The one loader of a trained model for inference (eval mode), stock or emovox head.

    Raises:
        BadRunDir: the directory holds no loadable model.
    """
    from .heads import HEAD_FILE, EmovoxForAudioClassification

    run_dir = Path(run_dir)
    if (run_dir / HEAD_FILE).is_file():
        return EmovoxForAudioClassification.from_pretrained(run_dir)
    from transformers import AutoModelForAudioClassification

    try:
        return AutoModelForAudioClassification.from_pretrained(run_dir).eval()
    except (OSError, ValueError) as exc:
        raise BadRunDir(f"cannot load a model from {run_dir}: {str(exc).splitlines()[0]} "
                        "(expected a run dir written by `emovox train`)") from None


def uses_attention_mask(feature_extractor) -> bool:
    """Whether to pass an attention mask: the feature extractor's setting follows the model's norm."""
    return bool(getattr(feature_extractor, "return_attention_mask", True))
