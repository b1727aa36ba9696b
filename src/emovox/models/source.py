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
from .export_dir import is_onnx_export, read_json_config
from .registry import REGISTRY, twin_of

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
    allow_pickle: bool = False  # load pickled .bin/.pt weights (they can run code); safetensors only when off

    @property
    def is_run_dir(self) -> bool:
        return bool(self.meta)


def looks_like_model(item: str | Path) -> bool:
    """Whether a command-line item names a model rather than audio: a folder with ``config.json``,
    a registry name, or a hub id (``owner/name``) that is no local path."""
    p = Path(item)
    if p.is_dir():
        return (p / CONFIG_FILE).is_file()
    if str(item) in REGISTRY:
        return True
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


def resolve_ref(ref: str | Path) -> str:
    """A scoring command's model reference, checked: a registry name or a hub id whose registry
    twin is installed names a pretrained *encoder*, which has no emotion head to score with.

    Raises:
        BadRunDir: such an encoder name (the message says how to train a head on it), or a
            reference that is neither a folder nor shaped like a hub id.
    """
    ref = str(ref)
    if not Path(ref).exists() and (ref in REGISTRY or twin_of(ref)):
        raise BadRunDir(f"model {ref} is a pretrained encoder without an emotion head; train one on it first "
                        f"(emovox train --model {ref} --manifest M --out RUN) and give the run dir RUN")
    check_ref(ref)
    return ref


def open_source(ref: str | Path, *, allow_pickle: bool = False) -> ModelSource:
    """Resolve a model reference, reading only configs (no weights).

    Raises:
        BadRunDir: no such folder and no loadable hub id, a malformed ``config.json`` or
            ``emovox.json``, a config that asks for custom code (``auto_map``), labels that
            disagree between the two, or a config without labels.
    """
    ref = resolve_ref(ref)
    path = Path(ref)
    config = _config(ref)
    labels = _config_labels(ref, config)
    meta = _meta(path) if path.is_dir() else {}
    if meta:
        scheme, temperature, max_seconds = _meta_values(path / META, meta)
        if labels and len(labels) != len(scheme):
            raise BadRunDir(f"{path / META}: its scheme has {len(scheme)} labels but config.json has {len(labels)} "
                            "(id2label); the two files come from different models")
        return ModelSource(ref, meta, config, scheme, temperature, max_seconds, allow_pickle=allow_pickle)
    if not labels:
        raise BadRunDir(f"{ref}: its config.json has no id2label; an audio-classification model needs its labels")
    return ModelSource(ref, {}, config, scheme_from_labels(labels),
                       defaults=[f"labels from config.json ({len(labels)})", "temperature 1.0 (none fitted)",
                                 f"training length {DEFAULT_MAX_SECONDS:g} s"], allow_pickle=allow_pickle)


def read_config_dict(ref: str) -> dict[str, Any]:
    """``config.json`` as a dict, refused when malformed or when it asks for code from the folder.

    ``auto_map`` names Python files shipped with the model that ``trust_remote_code`` would
    import; emovox never does, and says so rather than loading a built-in class in their place.

    Raises:
        BadRunDir: unreadable, not a JSON object, or declaring ``auto_map``.
    """
    where = str(Path(ref) / CONFIG_FILE) if Path(ref).is_dir() else f"{ref} config.json"
    try:
        if Path(ref).is_dir():
            d = json.loads((Path(ref) / CONFIG_FILE).read_text())
        else:
            from transformers import PretrainedConfig

            d, _ = PretrainedConfig.get_config_dict(ref)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise BadRunDir(f"{where}: cannot read the model config: {str(exc).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise BadRunDir(f"{where}: not a JSON object ({type(d).__name__}); expected a transformers config")
    id2label = d.get("id2label")
    if id2label is not None and (not isinstance(id2label, dict)
                                 or not all(str(k).lstrip("-").isdigit() for k in id2label)):
        raise BadRunDir(f"{where}: id2label must map integer ids to names; it has non-integer ids "
                        f"({list(id2label)[:5] if isinstance(id2label, dict) else type(id2label).__name__})")
    if "auto_map" in d:
        names = ", ".join(f"{k}={v}" for k, v in d["auto_map"].items()) if isinstance(d["auto_map"], dict) else ""
        raise BadRunDir(f"{where}: declares custom code (auto_map: {names or d['auto_map']}); emovox never runs "
                        "code shipped with a model (trust_remote_code stays off); use a model of a built-in "
                        "transformers type")
    return d


def _config(ref: str) -> Any:
    read_config_dict(ref)
    if is_onnx_export(ref):  # the runtime install has no transformers: a plain object serves
        return read_json_config(ref)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - a hostile config raises KeyError/TypeError/... from deep inside
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadRunDir(f"{ref}: cannot read the model config: {first}") from None


def _config_labels(ref: str, config: Any) -> list[str]:
    """Labels in id order from ``id2label``; ids must be 0..N-1."""
    id2label = getattr(config, "id2label", None) or {}
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        raise BadRunDir(f"{ref}: config.json id2label has non-integer ids ({list(id2label)[:5]})") from None
    if ids != list(range(len(ids))):
        raise BadRunDir(f"{ref}: config.json id2label ids must be 0..{len(ids) - 1}; found {ids[:10]}")
    return [str(id2label[i]) for i in ids]


def _meta(path: Path) -> dict[str, Any]:
    if not (path / META).is_file():
        return {}
    try:
        meta = json.loads((path / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRunDir(f"{path / META}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "scheme" not in meta:
        raise BadRunDir(f"{path / META}: has no label scheme; re-run `emovox train` or remove the file")
    return meta


def _meta_values(where: Path, meta: dict[str, Any]) -> tuple[LabelScheme, float, float]:
    """Scheme, temperature and training length from ``emovox.json``, each checked.

    Raises:
        BadRunDir: a malformed scheme or a non-positive / non-numeric temperature or length.
    """
    d = meta["scheme"]
    labels = d.get("labels") if isinstance(d, dict) else None
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(labels, list) or not labels \
            or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
        raise BadRunDir(f"{where}: malformed scheme (expected {{\"name\": str, \"labels\": [distinct strings]}})")
    values = []
    for key, default in (("temperature", 1.0), ("max_seconds", DEFAULT_MAX_SECONDS)):
        raw = meta.get(key) or default
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise BadRunDir(f"{where}: {key}={raw!r} must be a positive number")
        values.append(value)
    temperature = 1.0 if meta.get("temperature_in_weights") else values[0]
    return LabelScheme.from_dict(d), temperature, values[1]
