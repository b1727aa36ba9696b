"""What trains and how fast: freezing (front end, first N layers, all), per-part learning rates
and LoRA. Every family-specific question (which modules are the front end, where the layers are)
goes to the model's :class:`~emovox.models.backbones.Backbone`."""
from __future__ import annotations

from ..config import LORA_TARGETS, ModelConfig
from ..errors import BadConfig
from .backbones import family_of

# Transformers' rule (Trainer.get_decay_parameter_names): no weight decay for biases and norms.
NO_DECAY = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def backbone_of(model):
    """The encoder inside a classifier (stock or emovox head).

    Raises:
        BadConfig: the model has no separate encoder.
    """
    base = family_of(model).encoder_of(model)
    if base is None or base is model:
        raise BadConfig(f"{type(model).__name__} has no separate backbone to freeze or adapt")
    return base


def encoder_layers(model) -> list:
    """The transformer layers of a classifier's encoder, input side first.

    Raises:
        BadConfig: the encoder has no layer list emovox knows.
    """
    base = backbone_of(model)
    try:
        return family_of(base).layers(base)
    except AttributeError:
        raise BadConfig(f"model.freeze_layers / LoRA layers need the encoder's layer list; "
                        f"{type(base).__name__} has none") from None


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
    """Stop gradients into the front end (the convolutional feature encoder)."""
    family = family_of(model)
    family.freeze_front_end(family.encoder_of(model))


def freeze_layers(model, n: int) -> None:
    """Freeze the first ``n`` transformer layers and everything between them and the front end.

    Raises:
        BadConfig: ``n`` is more than the model's layer count.
    """
    base = backbone_of(model)
    layers = encoder_layers(model)
    if not 0 <= n <= len(layers):
        raise BadConfig(f"model.freeze_layers={n} but the model has {len(layers)} layers; valid: 0..{len(layers)}")
    if n == 0:
        return
    for part in [*family_of(base).below_layers(base), *layers[:n]]:
        for p in (part.parameters() if hasattr(part, "parameters") else [part]):
            p.requires_grad = False


def param_groups(model, lr: float, head_lr: float | None = None, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: backbone at ``lr``, head (everything outside the backbone) at
    ``head_lr`` (default ``lr``); weight decay as Transformers applies it (not on biases and norms).
    Frozen parameters are left out. Each group has a ``name`` (backbone, head, ..._no_decay)."""
    from torch import nn
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY))
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
    n_layers = len(encoder_layers(model))
    layers = list(range(int(cfg.freeze_layers), n_layers)) if cfg.freeze_layers else None
    lora = LoraConfig(r=int(cfg.lora_r), lora_alpha=float(cfg.lora_alpha), lora_dropout=float(cfg.lora_dropout),
                      target_modules=list(cfg.lora_target_modules), bias="none", layers_to_transform=layers,
                      layers_pattern=family_of(base).layers_pattern() if layers else None)
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
