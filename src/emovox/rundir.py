"""The fixed layout of a run directory, in one place.

A run dir is a ``save_pretrained`` directory (model + feature extractor) plus ``emovox.json``;
everything a later command needs is here.
"""
from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadRunDir

META = "emovox.json"
CONFIG = "config.yaml"
LOG = "train_log.jsonl"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"
METRICS = "train_metrics.json"


@dataclass(frozen=True)
class RunDir:
    """Paths inside a run directory."""

    root: Path

    @property
    def meta(self) -> Path:
        return self.root / META

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def log(self) -> Path:
        return self.root / LOG

    @property
    def curves(self) -> Path:
        return self.root / CURVES

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first. The Trainer writes ``trainer_state.json`` last, so a
        folder without it was cut off mid-save (e.g. by SIGKILL) and cannot be resumed from."""
        done = [p for p in self.root.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        return sorted(done, key=lambda p: int(p.name.split("-")[-1]))


def open_run(path: str | Path) -> RunDir:
    """Check that ``path`` is a run dir (or an exported one).

    Raises:
        BadRunDir: not a folder, or no model config / emovox.json.
    """
    root = Path(path)
    if not root.is_dir():
        raise BadRunDir(f"{root}: run directory not found (create one with `emovox train`)")
    missing = [n for n in ("config.json", META) if not (root / n).exists()]
    if missing:
        raise BadRunDir(f"{root}: not an emovox run directory (missing {', '.join(missing)})")
    return RunDir(root)


def is_run_dir(path: str | Path) -> bool:
    """True for a folder holding a model config and emovox.json."""
    p = Path(path)
    return p.is_dir() and (p / META).exists() and (p / "config.json").exists()


def read_meta(run: RunDir) -> dict[str, Any]:
    try:
        return json.loads(run.meta.read_text())
    except json.JSONDecodeError as exc:
        raise BadRunDir(f"{run.meta}: not valid JSON ({exc})") from None


def write_meta(run: RunDir, meta: dict[str, Any]) -> Path:
    run.meta.write_text(json.dumps(meta, indent=2, sort_keys=False))
    return run.meta


def update_meta(run: RunDir, **changes: Any) -> dict[str, Any]:
    meta = read_meta(run)
    meta.update(changes)
    write_meta(run, meta)
    return meta


def environment() -> dict[str, str]:
    """Package versions and the git commit, saved with every run for reproducibility."""
    import numpy
    import torch
    import transformers

    from . import __version__

    versions = {"emovox": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "numpy": numpy.__version__}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {**versions, "git_commit": commit}
