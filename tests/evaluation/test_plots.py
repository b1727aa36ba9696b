"""Plots write real PNGs and CSVs holding exactly the numbers they were given."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emovox.labels import get_scheme
from emovox.evaluation.metrics import reliability_bins, row_normalise
from emovox.evaluation.plots import plot_confusion, plot_curves, plot_reliability

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_width(path: Path) -> int:
    """Check the PNG signature and return the image width from the IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    return struct.unpack(">I", data[16:20])[0]


def test_plot_confusion_writes_png_and_csvs(tmp_path: Path) -> None:
    labels = ["ANG", "HAP", "SAD"]
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])
    png, counts_csv, norm_csv = plot_confusion(cm, labels, tmp_path / "sub" / "cm", title="t")
    assert (png.name, counts_csv.name, norm_csv.name) == ("cm.png", "cm.csv", "cm_normalised.csv")
    _png_width(png)
    counts = pd.read_csv(counts_csv, index_col=0)
    assert counts.index.name == "true\\pred"
    assert list(counts.index) == labels and list(counts.columns) == labels
    np.testing.assert_array_equal(counts.to_numpy(), cm)
    np.testing.assert_allclose(pd.read_csv(norm_csv, index_col=0).to_numpy(), row_normalise(cm))


def test_plot_confusion_grows_with_classes(tmp_path: Path) -> None:
    small = plot_confusion(np.eye(3, dtype=int), ["a", "b", "c"], tmp_path / "small", title="3")[0]
    labels = list(get_scheme("crema-d-21").labels)[:12]  # 12 keeps the test quick; 21 looks alike
    cm = np.random.default_rng(0).integers(0, 30, size=(12, 12))
    big = plot_confusion(cm, labels, tmp_path / "big", title="21")[0]
    assert _png_width(big) > 1.5 * _png_width(small)


def test_plot_reliability_csv_matches_bins(tmp_path: Path) -> None:
    probs = np.array([[0.7, 0.3]] * 4 + [[0.95, 0.05]] * 3)
    bins = reliability_bins(probs, [0, 0, 1, 1, 0, 0, 0])
    png, csv = plot_reliability(bins, tmp_path / "reliability", ece=0.123)
    _png_width(png)
    table = pd.read_csv(csv)
    assert len(table) == len(bins)
    np.testing.assert_array_equal(table["count"], [b["count"] for b in bins])
    expected_acc = [np.nan if b["accuracy"] is None else b["accuracy"] for b in bins]
    np.testing.assert_allclose(table["accuracy"], expected_acc)
    np.testing.assert_allclose(table["bin_lo"], [b["bin_lo"] for b in bins])


LOG_HISTORY = [
    {"loss": 2.0, "learning_rate": 1e-4, "epoch": 0.5, "step": 10},
    {"eval_loss": 1.9, "eval_accuracy": 0.3, "eval_uar": 0.25, "eval_macro_f1": 0.2,
     "eval_runtime": 1.2, "eval_samples_per_second": 50.0, "epoch": 0.5, "step": 10},
    {"loss": 1.5, "learning_rate": 5e-5, "epoch": 1.0, "step": 20},
    {"eval_loss": 1.6, "eval_accuracy": 0.5, "eval_uar": 0.45, "eval_macro_f1": 0.4,
     "eval_runtime": 1.1, "eval_samples_per_second": 55.0, "epoch": 1.0, "step": 20},
    {"loss": 1.2, "learning_rate": 1e-5, "epoch": 1.5, "step": 30},
    {"train_runtime": 9.0, "train_loss": 1.6, "epoch": 1.5, "step": 30},
]


def test_plot_curves_merges_steps_and_keeps_series(tmp_path: Path) -> None:
    png, csv = plot_curves(LOG_HISTORY, tmp_path / "curves.png")
    assert (png.name, csv.name) == ("curves.png", "curves.csv")
    _png_width(png)
    table = pd.read_csv(csv, index_col="step")
    assert list(table.index) == [10, 20, 30]
    assert set(table.columns) == {"loss", "eval_loss", "learning_rate", "eval_accuracy", "eval_uar",
                                  "eval_macro_f1"}
    np.testing.assert_allclose(table["loss"], [2.0, 1.5, 1.2])
    np.testing.assert_allclose(table["eval_uar"], [0.25, 0.45, np.nan])
    np.testing.assert_allclose(table["learning_rate"], [1e-4, 5e-5, 1e-5])


@pytest.mark.parametrize("rows", [[], [{"train_runtime": 1.0}]])
def test_plot_curves_with_nothing_logged(tmp_path: Path, rows: list[dict]) -> None:
    png, csv = plot_curves(rows, tmp_path)
    assert png == tmp_path / "curves.png"
    _png_width(png)
    assert csv.exists()
