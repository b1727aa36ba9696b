"""What a model reference means: every command that scores audio (predict, evaluate, export,
serve) takes an emovox run dir, any ``save_pretrained`` directory of an audio-classification
model (an exported ONNX dir too), or a hub id.

An emovox run dir adds what its ``emovox.json`` knows (label scheme, temperature, training
length); a plain model brings its labels in ``config.json`` (``id2label``) and works with
defaults, listed in :attr:`ModelSource.defaults` so the output can say them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.audio import DEFAULT_MAX_SECONDS, is_audio_file
from ..errors import BadRunDir
from ..labels import LabelScheme, scheme_from_labels
from ..rundir import META

CONFIG_FILE = "config.json"
# owner/name as the hub spells repository ids
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class ModelSource:
    """A resolved model reference.

    Attributes:
        ref: The reference as given (a local directory or a hub id).
        meta: ``emovox.json`` of an emovox run dir; empty for other models.
        config: The model's Transformers config.
        scheme: Labels in id order (from ``emovox.json``, else the config's ``id2label``).
        temperature: Divides the logits at inference (1.0 when folded into the weights or unknown).
        max_seconds: Clip length the model was trained on (default 5 s when unknown).
        defaults: What was assumed because the model did not say, one phrase each.
    """

    ref: str
    meta: dict[str, Any]
    config: Any
    scheme: LabelScheme
    temperature: float = 1.0
    max_seconds: float = DEFAULT_MAX_SECONDS
    defaults: list[str] = field(default_factory=list)

    @property
    def is_run_dir(self) -> bool:
        return bool(self.meta)


def looks_like_model(item: str | Path) -> bool:
    """Whether a command-line item names a model rather than audio: a folder with ``config.json``,
    or a hub id (``owner/name``) that is no local path."""
    p = Path(item)
    if p.is_dir():
        return (p / CONFIG_FILE).is_file()
    named_like_input = is_audio_file(p) or p.suffix.lower() == ".csv"  # a missing clip or manifest
    return not p.exists() and bool(_HUB_ID.match(str(item))) and not named_like_input


def check_ref(ref: str | Path) -> None:
    """Refuse a reference that is neither a local folder nor shaped like a hub id.

    Raises:
        BadRunDir: naming the path and what would be valid.
    """
    if not Path(ref).is_dir() and not _HUB_ID.match(str(ref)):
        raise BadRunDir(f"model {ref} is not a directory (nor a hub id owner/name); give an emovox run dir, "
                        "a save_pretrained folder with config.json, or a hub id")


def open_source(ref: str | Path) -> ModelSource:
    """Resolve a model reference, reading only configs (no weights).

    Raises:
        BadRunDir: no such folder and no loadable hub id, a malformed ``emovox.json``, or a
            config without labels.
    """
    ref = str(ref)
    path = Path(ref)
    check_ref(ref)
    config = _config(ref)
    meta = _meta(path) if path.is_dir() else {}
    if meta:
        return ModelSource(ref, meta, config, LabelScheme.from_dict(meta["scheme"]),
                           1.0 if meta.get("temperature_in_weights") else float(meta.get("temperature") or 1.0),
                           float(meta.get("max_seconds") or DEFAULT_MAX_SECONDS))
    id2label = getattr(config, "id2label", None) or {}
    labels = [id2label[i] for i in sorted(int(k) for k in id2label)] if id2label else []
    if not labels:
        raise BadRunDir(f"{ref}: its config.json has no id2label; an audio-classification model needs its labels")
    return ModelSource(ref, {}, config, scheme_from_labels(labels),
                       defaults=[f"labels from config.json ({len(labels)})", "temperature 1.0 (none fitted)",
                                 f"training length {DEFAULT_MAX_SECONDS:g} s"])


def _config(ref: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref)
    except (OSError, ValueError) as exc:
        raise BadRunDir(f"{ref}: cannot read the model config: {str(exc).splitlines()[0]}") from None


def _meta(path: Path) -> dict[str, Any]:
    if not (path / META).is_file():
        return {}
    try:
        meta = json.loads((path / META).read_text())
    except json.JSONDecodeError as exc:
        raise BadRunDir(f"{path / META}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "scheme" not in meta:
        raise BadRunDir(f"{path / META}: has no label scheme; re-run `emovox train` or remove the file")
    return meta
