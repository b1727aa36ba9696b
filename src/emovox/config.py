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

from .audio import DEFAULT_MAX_SECONDS
from .errors import BadConfig
from .models import ModelConfig


@dataclass
class DataConfig:
    """``data.*``: how clips are read."""

    max_seconds: float = DEFAULT_MAX_SECONDS
    scheme: str | None = None  # None: inferred from the manifest's labels
    cache_audio: bool = True  # decode every clip once, keep float32 in memory
    group_by_length: bool = True  # batches of similar length (lengths from the manifest)
    extra_train: list[str] = field(default_factory=list)  # more manifests added to train (pseudo-labels)


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


EXTRA_TRAINING_KEYS = {
    "early_stopping_patience": 5,  # evaluations without improvement before stopping; 0 disables
    "early_stopping_threshold": 0.0,
    "class_weighted_loss": False,
    "balanced_sampling": False,  # draw clips so every class is equally likely
    "head_learning_rate": None,  # the head's own learning rate (None: learning_rate for all)
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
        raw = read_yaml_mapping(path, what="config file",
                                expected="sections data/model/augment/training at the top level")
    for item in overrides:
        key, value = _parse_override(item)
        section, _, name = key.partition(".")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise BadConfig(f"override {item!r}: {section!r} is not a section")
        raw[section][name] = value
    return from_dict(raw, source=str(path or "overrides"))


def read_yaml_mapping(path: str | Path, *, what: str, expected: str) -> dict:
    """A YAML file that must hold a mapping.

    Raises:
        BadConfig: missing file, invalid YAML, or not a mapping (the message says what was expected).
    """
    path = Path(path)
    if not path.exists():
        raise BadConfig(f"{path}: {what} not found")
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
    valid_training = _training_argument_names() | set(EXTRA_TRAINING_KEYS)
    for key in training:
        if key not in valid_training:
            raise BadConfig(f"{source}: unknown key training.{key}; use a transformers.TrainingArguments "
                            f"name or one of {', '.join(sorted(EXTRA_TRAINING_KEYS))}")
    cfg.training.update(training)
    return cfg


def _training_argument_names() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}
