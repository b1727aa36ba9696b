"""An ONNX export folder as the runtime reads it, without transformers: what makes a folder an
export, and its ``config.json`` as a plain object (``model_type``, ``id2label`` with integer ids,
``max_source_positions``, ...), which is all prediction asks of a config."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ONNX_FILE = "model.onnx"
# a folder with any of these holds a torch model too (an export written into its run dir)
TORCH_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "emovox_model.safetensors", "pytorch_model.bin")


def is_onnx_export(ref: str | Path) -> bool:
    """Whether ``ref`` is a folder holding an ONNX graph and no torch weights."""
    path = Path(ref)
    return (path / ONNX_FILE).is_file() and not any((path / n).is_file() for n in TORCH_WEIGHTS)


class JsonConfig:
    """A model's ``config.json`` with attribute access, ``id2label`` keyed by int as transformers keys it."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        id2label = d.get("id2label")
        if isinstance(id2label, dict):
            self.id2label = {int(k): v for k, v in id2label.items()}

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_json_config(folder: str | Path) -> JsonConfig:
    """``folder/config.json`` as a :class:`JsonConfig` (checked by ``source.read_config_dict`` first)."""
    return JsonConfig(json.loads((Path(folder) / "config.json").read_text()))
