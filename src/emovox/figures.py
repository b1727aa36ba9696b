"""What every figure shares: the headless backend, the resolution, and how a PNG is written.

Each plotting function (data report, evaluation, training curves) writes a PNG and, beside it,
the numbers it shows as CSV; the CSV is the source of truth, the PNG is for reading.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 100


def beside(stem: Path, suffix: str) -> Path:
    """``stem`` + ``suffix`` without treating dots in the stem's name as an extension; makes the folder."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return stem.parent / f"{stem.name}{suffix}"


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG and close it (long evaluation loops must not leak figures)."""
    fig.savefig(path, dpi=DPI)  # every figure uses constrained_layout; "tight" would draw twice
    plt.close(fig)
    return Path(path)
