"""Typed configuration: defaults < YAML < ``key=value`` overrides; the resolved config is saved.

Sections are ``data``, ``model``, ``augment`` and ``training``; ``training`` keys are
``transformers.TrainingArguments`` names plus the few emovox adds (``EXTRA_TRAINING_KEYS``).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from .data.audio import DEFAULT_MAX_SECONDS
from .errors import BadConfig


DROPOUT_KEYS = (
    "hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout",
    "final_dropout", "layerdrop", "mask_time_prob",
)
POOLINGS = ("mean", "attentive", "stats")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


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
        pooling: "mean" (the stock Transformers head), "attentive" (attentive statistics pooling)
            or "stats" (mean and standard deviation over real frames of every layer, concatenated,
            under a linear classifier: a probe over all layers; cached features work with it).
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
        pad_to_window: Whisper: pad (or cut) every clip to ``data.max_seconds`` (whole seconds)
            and pool over all frames, exactly as ``transformers.pipeline`` runs the saved run dir;
            off (default), each clip is encoded at its own length and pooled over real frames.
        trim_silence_db: Cut each clip's leading and trailing silence before the encoder: keep
            the 10 ms frames from the first to the last within this many dB of the loudest, plus
            0.15 s either side (None or 0: off). Saved in the feature extractor, so evaluate,
            predict, serve and export do the same; a plain ``transformers.pipeline`` does not.
        tune_upper_layers: With ``freeze_backbone`` and ``cache_features``: fine-tune the top N
            encoder layers (and the final norm) with the head, on cached frames of the layer below
            them (``training.upper_tuning``); 0 (default) trains the head alone.
        layer_budget: Run only the encoder's first N transformer layers (None: all): the layers
            above are not loaded, trained, saved or executed (``models.layer_budget``); the
            head reads the layers kept. Choose N on validation with
            ``python -m benchmarks.layer_budget`` (speed vs UAR on cached features).
        stats_skip_states: With ``pooling: stats`` on a frozen probe (``freeze_backbone`` and
            ``cache_features``): leave out the encoder's first N hidden states
            (1: the input embeddings, i.e. Whisper's convolutional front end; 2: also the first
            layer). Their weights in the head are zero, so nothing else changes (the run dir still
            computes them). The front end carries the microphone and the language's sound more than
            the emotion: 1 lifted cross-corpus UAR (benchmarks/NOTES.md, configs/cross-corpus.yaml).
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
    pad_to_window: bool = False
    trim_silence_db: float | None = None
    tune_upper_layers: int = 0
    layer_budget: int | None = None
    stats_skip_states: int = 0
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

    @property
    def cacheable(self) -> bool:
        """True when a head on cached utterance statistics computes what the full model does."""
        return self.pooling in ("mean", "stats")


@dataclass
class DataConfig:
    """``data.*``: how clips are read."""

    max_seconds: float = DEFAULT_MAX_SECONDS
    scheme: str | None = None  # None: inferred from the manifest's labels
    cache_audio: bool = True  # decode every clip once, keep float32 in memory
    group_by_length: bool = True  # batches of similar length (lengths from the manifest)
    prefetch: int = 8  # training clips prepared ahead (decoded, augmented, featurized) in a thread (0: none; off with loader workers)
    extra_train: list[str] = field(default_factory=list)  # more manifests added to train (pseudo-labels)
    balance_corpora: bool = False  # several --manifest: repeat smaller corpora's train rows to the largest's count


@dataclass
class AugmentConfig:
    """``augment.*``: audiomentations, training only, each switchable."""

    enabled: bool = True
    noise_p: float = 0.5
    noise_min_amplitude: float = 0.001
    noise_max_amplitude: float = 0.015
    pitch_p: float = 0.5
    pitch_semitones: float = 4.0
    stretch_p: float = 0.5
    stretch_min_rate: float = 0.8
    stretch_max_rate: float = 1.25
    # cached-feature path: augmented copies of each clip the head fits on, encoded and cached
    # beside the clean one (copy k seeded by (seed, k, clip)); 0 fits on the clean clips only
    feature_copies: int = 0
    # cached-feature path: channel copies of each training clip (emovox.training.channel_copies), each
    # through one stress condition drawn per (seed, copy, clip) from channel_conditions: a noise
    # family (white, pink, babble: babble from other training speakers only) at an SNR drawn from
    # channel_snr_db, another family (telephone, gsm, mp3, opus, reverb, ...) as one of its
    # default conditions, or a full condition name; 0: none
    channel_copies: int = 0
    channel_conditions: list[str] = field(default_factory=lambda: ["babble", "telephone", "gsm"])
    channel_snr_db: list[float] = field(default_factory=lambda: [0.0, 20.0])


EXTRA_TRAINING_KEYS = {
    "early_stopping_patience": 5,  # evaluations without improvement before stopping; 0 disables
    "early_stopping_threshold": 0.0,
    "class_weighted_loss": False,
    "balanced_sampling": False,  # draw clips so every class is equally likely
    "head_learning_rate": None,  # the head's own learning rate (None: learning_rate for all)
    # cached-feature path only (training.features):
    "head_solver": "adamw",  # or "lbfgs": full-batch L-BFGS to convergence (a regularised probe), or "ridge" (least squares)
    "head_l2": 0.0,  # lbfgs: (l2 / 2) * |W|^2 beside the mean loss; ridge: l2 * |W|^2 beside the mean squared error
    "head_max_iter": 300,  # lbfgs: iterations
    "head_refit": False,  # refit the head on train + validation after validating (final model)
    "standardise_by": None,  # cached features: standardise each corpus or speaker by its own statistics for the fit
    # model.tune_upper_layers (training.upper_tuning): SpecAugment-style masks on the cached frames
    "frame_time_mask": 0.0,  # fraction of each clip's frames dropped, in spans of 10 frames (0.2 s)
    "frame_channel_mask": 0.0,  # fraction of the hidden channels zeroed, in spans of 32
}

# TrainingArguments names that transformers 5 dropped, still valid in emovox configs and
# translated for the installed release (training.train.trainer_kwargs): old name -> new name.
LEGACY_TRAINING_KEYS: dict[str, str | None] = {
    "warmup_ratio": "warmup_steps",  # 5.x: warmup_steps < 1 is a ratio
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "overwrite_output_dir": None,  # emovox decides itself (checkpoints need --resume)
}

TRAINING_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "learning_rate": 3e-5,
    "num_train_epochs": 15,
    "eval_strategy": "steps",
    "eval_steps": 500,
    "save_steps": 500,
    "logging_steps": 50,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "save_total_limit": 2,
    "metric_for_best_model": "eval_loss",
    "seed": 0,
    "dataloader_num_workers": 0,
    **EXTRA_TRAINING_KEYS,
}


@dataclass
class Config:
    """The whole training configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    training: dict[str, Any] = field(default_factory=lambda: dict(TRAINING_DEFAULTS))

    def to_dict(self) -> dict:
        return {"data": dataclasses.asdict(self.data), "model": dataclasses.asdict(self.model),
                "augment": dataclasses.asdict(self.augment), "training": dict(self.training)}

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)

    @property
    def seed(self) -> int:
        return int(self.training.get("seed", 0))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Resolve a config from defaults, an optional YAML file and ``section.key=value`` overrides.

    Raises:
        BadConfig: unreadable YAML, unknown section or key, or a malformed override.
    """
    raw: dict = {}
    if path is not None:
        raw = read_yaml_mapping(shipped_config(path), what="config file",
                                expected="sections data/model/augment/training at the top level")
    for item in overrides:
        key, value = _parse_override(item)
        section, _, name = key.partition(".")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise BadConfig(f"override {item!r}: {section!r} is not a section")
        raw[section][name] = value
    return from_dict(raw, source=str(path or "overrides"))


SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # the repository's configs/ (editable install)


def shipped_config(path: str | Path) -> Path:
    """``path`` itself when it exists, else the shipped config of that name (``demo``,
    ``demo.yaml`` or ``configs/demo.yaml`` from any working folder), else ``path`` unchanged."""
    path = Path(path)
    if path.exists():
        return path
    candidate = SHIPPED_CONFIGS / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    return candidate if candidate.is_file() else path


def read_yaml_mapping(path: str | Path, *, what: str, expected: str) -> dict:
    """A YAML file that must hold a mapping.

    Raises:
        BadConfig: missing file, invalid YAML, or not a mapping (the message says what was expected).
    """
    path = Path(path)
    if not path.exists():
        shipped = sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml")) if what == "config file" else []
        hint = f" (shipped configs, usable by name from any folder: {', '.join(shipped)})" if shipped else ""
        raise BadConfig(f"{path}: {what} not found{hint}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BadConfig(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise BadConfig(f"{path}: expected {expected}")
    return raw


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or "." not in key:
        raise BadConfig(f"override {item!r} must look like section.key=value (e.g. training.max_steps=20)")
    return key.strip(), yaml.safe_load(value) if value.strip() else None


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$")


def _coerce(value: Any) -> Any:
    """YAML 1.1 reads ``1e-5`` as a string; numbers written that way are meant as floats."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    return value


def from_dict(raw: dict, *, source: str = "config") -> Config:
    """Build a Config from nested dicts, naming any unknown key and the valid ones."""
    raw = {sec: ({k: _coerce(v) for k, v in vals.items()} if isinstance(vals, dict) else vals)
           for sec, vals in raw.items()}
    unknown = set(raw) - {"data", "model", "augment", "training"}
    if unknown:
        raise BadConfig(f"{source}: unknown section(s) {', '.join(sorted(unknown))}; valid: data, model, augment, training")
    cfg = Config()
    for name in ("data", "model", "augment"):
        cfg_section = getattr(cfg, name)
        valid = {f.name for f in dataclasses.fields(cfg_section)}
        for key, value in (raw.get(name) or {}).items():
            if key not in valid:
                raise BadConfig(f"{source}: unknown key {name}.{key}; valid: {', '.join(sorted(valid))}")
            setattr(cfg_section, key, value)
    training = raw.get("training") or {}
    valid_training = _training_argument_names() | set(EXTRA_TRAINING_KEYS) | set(LEGACY_TRAINING_KEYS)
    for key in training:
        if key not in valid_training:
            raise BadConfig(f"{source}: unknown key training.{key}; use a transformers.TrainingArguments "
                            f"name or one of {', '.join(sorted(EXTRA_TRAINING_KEYS))}")
    # YAML reads a bare `no` as false; transformers' strategies (eval_strategy: no) want the string
    cfg.training.update({k: "no" if k.endswith("_strategy") and v is False else v for k, v in training.items()})
    return cfg


def _training_argument_names() -> set[str]:
    """``TrainingArguments``' field names, read from its source (importing transformers' trainer
    side takes seconds, so a mistyped key would wait for torch to load); imported when the source
    does not show them."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("transformers")
    try:
        tree = ast.parse((Path(spec.origin).parent / "training_args.py").read_text(encoding="utf-8"))
        body = next(n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainingArguments")
        names = {n.target.id for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    except (AttributeError, TypeError, OSError, SyntaxError, StopIteration):
        names = set()
    if names:
        return names
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}
