"""Metrics per group of a manifest column (gender, age, language, corpus, speaker, ...) and the
largest gap between groups, so a report says whether a model works as well for everyone."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import BadManifest
from ..labels import LabelScheme
from .metrics import classification_metrics

GROUP_KEYS = ("uar", "accuracy", "macro_f1", "ece", "n")
GAP_KEYS = ("uar", "accuracy", "macro_f1")
DEFAULT_GAP_WARNING = 0.05  # UAR between the best and the worst group
MISSING = "(missing)"       # rows with an empty value: shown, left out of the gap


def group_values(df: pd.DataFrame, column: str, *, where: str = "the manifest") -> list[str]:
    """The column's values as group names (empty -> ``(missing)``).

    Raises:
        BadManifest: no such column, or no row has a value in it.
    """
    if column not in df.columns:
        raise BadManifest(f"{where}: no column {column!r} to group by; columns: {', '.join(map(str, df.columns))}")
    values = [str(v).strip() if str(v).strip() not in ("", "nan", "None") else MISSING for v in df[column]]
    if all(v == MISSING for v in values):
        raise BadManifest(f"{where}: column {column!r} is empty in every row (prepare fills gender for ravdess, "
                          "crema-d with its demographics table and emovo; add values to group by it)")
    return values


def group_metrics(y_true: Sequence[int], probs: np.ndarray, groups: Sequence[str], scheme: LabelScheme, *,
                  min_n: int = 1) -> dict:
    """UAR, accuracy, macro-F1, ECE and n for each group, and the largest gap between groups.

    Args:
        groups: One group name per row (as :func:`group_values` gives them).
        min_n: Groups with fewer rows are listed but left out of the gap.

    Returns:
        ``{"groups": {name: {uar, accuracy, macro_f1, ece, n}}, "gap": {metric: {"value", "best",
        "worst"}}}``; ``gap`` is empty when fewer than two groups count.
    """
    y_true, probs, groups = np.asarray(y_true), np.asarray(probs), np.asarray(groups, dtype=object)
    out: dict = {"groups": {}, "gap": {}}
    for name in sorted(set(groups), key=str):
        mask = groups == name
        m = classification_metrics(y_true[mask], probs[mask], scheme)
        out["groups"][name] = {k: m[k] for k in GROUP_KEYS}
    counted = {g: m for g, m in out["groups"].items() if g != MISSING and m["n"] >= min_n}
    if len(counted) >= 2:
        for key in GAP_KEYS:
            best = max(counted, key=lambda g: counted[g][key])
            worst = min(counted, key=lambda g: counted[g][key])
            out["gap"][key] = {"value": counted[best][key] - counted[worst][key], "best": best, "worst": worst}
    return out


def gap_warnings(by: dict[str, dict], threshold: float = DEFAULT_GAP_WARNING) -> list[str]:
    """One sentence per grouping whose UAR gap exceeds ``threshold``."""
    lines = []
    for column, res in by.items():
        gap = res["gap"].get("uar")
        if gap and gap["value"] > threshold:
            g = res["groups"]
            lines.append(f"UAR differs by {gap['value']:.3f} across {column} (above {threshold:g}): "
                         f"{gap['best']} {g[gap['best']]['uar']:.3f} vs {gap['worst']} {g[gap['worst']]['uar']:.3f}")
    return lines


def groups_markdown(by: dict[str, dict], warnings: list[str]) -> list[str]:
    """The report's per-group section: a table per column, then the warnings."""
    lines = ["## Groups", ""]
    for column, res in by.items():
        lines += [f"### By {column}", "", "| group | n | UAR | accuracy | macro-F1 | ECE |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {g} | {m['n']} | {m['uar']:.3f} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['ece']:.3f} |"
                  for g, m in res["groups"].items()]
        gap = res["gap"].get("uar")
        lines += ["", f"Largest UAR gap: {gap['value']:.3f} ({gap['best']} over {gap['worst']})." if gap
                  else "Fewer than two groups with values: no gap.", ""]
    lines += [f"> **Warning:** {w}" for w in warnings]
    return lines + ([""] if warnings else [])
