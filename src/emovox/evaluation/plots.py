"""Figures for reports: each function writes a PNG and, beside it, the numbers it shows as CSV.

The CSV is the source of truth (diffable, re-plottable); the PNG is for reading. Every function
closes its figure, so long evaluation loops do not leak memory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay

from ..figures import beside, save_figure
from .metrics import row_normalise

CONFUSION_INDEX = "true\\pred"
_LOSS_KEYS = ("loss", "eval_loss")
# Trainer eval entries that describe speed, not quality.
_NOT_METRICS = ("runtime", "per_second", "epoch")


def _confusion_panel(ax: plt.Axes, cm: np.ndarray, labels: Sequence[str], fmt: str, title: str) -> None:
    """One annotated confusion panel; the font shrinks as classes grow so cells stay readable."""
    fontsize = max(5.0, min(10.0, 160.0 / len(labels)))
    ConfusionMatrixDisplay(cm, display_labels=list(labels)).plot(
        ax=ax, values_format=fmt, colorbar=False, cmap="Blues",
        xticks_rotation="vertical", text_kw={"fontsize": fontsize},
    )
    ax.set_title(title)


def plot_confusion(cm: np.ndarray, labels: Sequence[str], out_stem: Path, *, title: str) -> list[Path]:
    """Counts and row-normalised (recall) confusion matrices side by side.

    Args:
        cm: Count matrix, rows = true class, columns = predicted class.
        labels: Class names in id order.
        out_stem: Path without suffix, e.g. ``report/confusion_matrix``.
        title: Figure title (e.g. model and split).

    Returns:
        ``{stem}.png``, ``{stem}.csv`` (counts) and ``{stem}_normalised.csv``; both CSVs carry the
        labels as headers, the first column named ``true\\pred``.
    """
    cm = np.asarray(cm)
    norm = row_normalise(cm)
    side = max(5.0, 0.5 * len(labels) + 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side, side + 1.5), constrained_layout=True)
    _confusion_panel(axes[0], cm, labels, "d", "counts")
    _confusion_panel(axes[1], norm, labels, ".2f", "row-normalised (recall)")
    fig.suptitle(title)
    paths = [save_figure(fig, beside(out_stem, ".png"))]
    for suffix, values in ((".csv", cm), ("_normalised.csv", norm)):
        frame = pd.DataFrame(values, index=list(labels), columns=list(labels))
        frame.to_csv(beside(out_stem, suffix), index_label=CONFUSION_INDEX)
        paths.append(beside(out_stem, suffix))
    return paths


def plot_reliability(bins: list[dict], out_stem: Path, *, ece: float) -> list[Path]:
    """Reliability diagram (accuracy vs confidence per bin) above a histogram of bin counts.

    Args:
        bins: Output of :func:`emovox.metrics.reliability_bins`.
        out_stem: Path without suffix.
        ece: Expected calibration error, shown in the title.

    Returns:
        ``{stem}.png`` and ``{stem}.csv`` (one row per bin; empty bins have blank accuracy).
    """
    table = pd.DataFrame(bins, columns=["bin_lo", "bin_hi", "count", "confidence", "accuracy"])
    centres = (table["bin_lo"] + table["bin_hi"]) / 2
    width = table["bin_hi"] - table["bin_lo"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    accuracy = table["accuracy"].astype(float)
    top.bar(centres, accuracy.fillna(0.0), width=width, edgecolor="black", label="accuracy")
    top.bar(centres, (table["confidence"].astype(float) - accuracy).fillna(0.0), bottom=accuracy.fillna(0.0),
            width=width, color="tab:red", alpha=0.3, edgecolor="tab:red", label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=f"reliability (ECE = {ece:.3f})")
    top.legend(loc="upper left")
    bottom.bar(centres, table["count"], width=width, color="gray", edgecolor="black")
    bottom.set(xlabel="top-1 confidence", ylabel="count")
    paths = [save_figure(fig, beside(out_stem, ".png")), beside(out_stem, ".csv")]
    table.to_csv(paths[1], index=False)
    return paths


def curves_table(log_rows: list[dict]) -> pd.DataFrame:
    """Trainer ``log_history`` as one row per step: train/eval loss, learning rate, eval metrics.

    Train and eval entries logged at the same step are merged; speed entries (runtime,
    samples per second) and rows without a step are dropped.
    """
    frame = pd.DataFrame([row for row in log_rows if "step" in row])
    if frame.empty:
        return pd.DataFrame(index=pd.Index([], name="step"))
    keep = [c for c in frame.columns if c in (*_LOSS_KEYS, "learning_rate")
            or (c.startswith("eval_") and not any(k in c for k in _NOT_METRICS))]
    return frame.groupby("step")[keep].first().sort_index()


def plot_curves(log_rows: list[dict], out_path: Path) -> list[Path]:
    """Losses (train, validation) and validation metrics against step, in two panels.

    Args:
        log_rows: ``trainer.state.log_history``.
        out_path: The PNG path (e.g. ``report/curves.png``); a path not ending in ``.png`` is
            taken as a directory that receives ``curves.png``.

    Returns:
        The PNG path and the CSV beside it (the table of :func:`curves_table`).
    """
    out_path = Path(out_path)
    if out_path.suffix != ".png":
        out_path = out_path / "curves.png"
    table = curves_table(log_rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, columns, title in (
        (left, [c for c in _LOSS_KEYS if c in table], "loss"),
        (right, [c for c in table if c.startswith("eval_") and c != "eval_loss"], "validation metrics"),
    ):
        for column in columns:
            series = table[column].dropna()
            ax.plot(series.index, series.values, marker="o", markersize=3, label=column)
        ax.set(xlabel="step", title=title)
        if columns:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    paths = [save_figure(fig, beside(out_path.with_suffix(""), ".png")), beside(out_path.with_suffix(""), ".csv")]
    table.to_csv(paths[1])
    return paths


def plot_matrix(table: pd.DataFrame, path: Path, *, title: str) -> Path:
    """A heatmap of a train x test score table (values written in the cells, 0..1 colour scale)."""
    fig, ax = plt.subplots(figsize=(1.6 * len(table.columns) + 3, 0.9 * len(table.index) + 2), constrained_layout=True)
    im = ax.imshow(table.to_numpy(dtype=float), vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(table.columns)), list(table.columns))
    ax.set_yticks(range(len(table.index)), list(table.index))
    ax.set(xlabel="test corpus", ylabel="trained on", title=title)
    for i in range(len(table.index)):
        for j in range(len(table.columns)):
            value = float(table.iat[i, j])
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="UAR")
    return save_figure(fig, path)


def plot_coverage(points: list[dict], out_stem: Path, *, aurc: float, chosen: dict | None = None) -> list[Path]:
    """Accuracy against coverage when answering only above a confidence threshold (and the
    threshold itself), with the chosen operating point marked.

    Args:
        points: Output of :func:`emovox.evaluation.abstention.coverage_curve`.
        aurc: Area under the risk-coverage curve, shown in the title.
        chosen: Output of ``threshold_for_accuracy`` (marked when it found a threshold).

    Returns:
        ``{stem}.png`` and ``{stem}.csv`` (threshold, coverage, accuracy, n per point).
    """
    table = pd.DataFrame(points, columns=["threshold", "coverage", "accuracy", "n"])
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    ax.plot(table["coverage"], table["accuracy"], color="tab:blue", label="accuracy on answered clips")
    ax.plot(table["coverage"], table["threshold"], color="tab:gray", linestyle="--", label="threshold (min confidence)")
    if chosen and chosen.get("min_confidence") is not None:
        ax.plot([chosen["coverage"]], [chosen["accuracy"]], "o", color="tab:red",
                label=f"target {chosen['target_accuracy']:g}: P={chosen['min_confidence']:.3f}, "
                      f"coverage {chosen['coverage']:.1%}")
    ax.set(xlabel="coverage (share of clips answered)", ylabel="accuracy / threshold", xlim=(0, 1), ylim=(0, 1.02),
           title=f"accuracy-coverage (AURC {aurc:.3f}, lower is better)")
    ax.legend(loc="lower left", fontsize=8)
    paths = [save_figure(fig, beside(out_stem, ".png")), beside(out_stem, ".csv")]
    table.to_csv(paths[1], index=False, float_format="%.6f")
    return paths
