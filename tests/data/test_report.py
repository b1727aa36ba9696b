"""The data report's class-balance figure holds exactly the counts it was given."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from emovox.data.report import plot_class_balance

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_class_balance_writes_csv_beside(tmp_path: Path) -> None:
    counts = pd.DataFrame(
        {"train": [10, 4, 0], "validation": [2, 1, 1], "test": [3, 2, 1]},
        index=pd.Index(["ANG", "HAP", "SAD"], name="label"),
    )
    png = plot_class_balance(counts, tmp_path / "class_balance.png")
    assert png == tmp_path / "class_balance.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    back = pd.read_csv(tmp_path / "class_balance.csv", index_col="label")
    pd.testing.assert_frame_equal(back, counts)
