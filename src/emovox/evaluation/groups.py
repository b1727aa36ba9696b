"""Metrics per group of a manifest column (gender, age, language, corpus, speaker, ...) and the
largest gap between groups, so a report says whether a model works as well for everyone."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import BadManifest
from ..labels import LabelScheme
from .metrics import classification_metrics, uar_of

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


def speaker_units(df: pd.DataFrame, column: str) -> list[str] | None:
    """The speakers a gap over ``column`` resamples: the manifest's speaker column when every row
    has one (and the grouping is not by speaker itself), else None (clips are resampled)."""
    if column == "speaker" or "speaker" not in df.columns:
        return None
    speakers = [str(v).strip() for v in df["speaker"]]
    return None if any(v in ("", "nan", "None") for v in speakers) else speakers


def group_metrics(y_true: Sequence[int], probs: np.ndarray, groups: Sequence[str], scheme: LabelScheme, *,
                  min_n: int = 1, clusters: Sequence[str] | None = None, reps: int = 1000, seed: int = 0) -> dict:
    """UAR, accuracy, macro-F1, ECE and n for each group, and the largest gap between groups.

    Args:
        groups: One group name per row (as :func:`group_values` gives them).
        min_n: Groups with fewer rows are listed but left out of the gap.
        clusters: One unit per row (the speaker) that the UAR gap's interval resamples: a gap
            between two groups of a few speakers each moves with which speakers were drawn far
            more than with which clips. None resamples clips.

    Returns:
        ``{"groups": {name: {uar, accuracy, macro_f1, ece, n}}, "gap": {metric: {"value", "best",
        "worst"}}}``; ``gap`` is empty when fewer than two groups count. The UAR gap also has
        ``ci`` (95% bootstrap interval of best minus worst, each group resampled on its own) and
        ``ci_unit`` (``speaker`` or ``clip``); ``reps=0`` leaves the interval out.
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
        gap = out["gap"]["uar"]
        if reps <= 0:
            return out
        units = np.arange(len(groups)) if clusters is None else np.asarray(clusters, dtype=object)
        gap["ci"] = gap_interval(y_true, probs.argmax(axis=1), [groups == gap["best"], groups == gap["worst"]],
                                 units, len(scheme), reps=reps, seed=seed)
        gap["ci_unit"] = "clip" if clusters is None else "speaker"
    return out


def gap_interval(y: np.ndarray, pred: np.ndarray, masks: Sequence[np.ndarray], units: np.ndarray, n_classes: int, *,
                 reps: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of UAR(first group) - UAR(second group): each group's
    units (speakers, or clips) drawn with replacement, every row of a drawn unit kept."""
    rng = np.random.default_rng(seed)
    layouts = []  # per group: its rows ordered by unit, and each unit's first position and row count
    for m in masks:
        rows = np.flatnonzero(m)
        _, code = np.unique(units[rows].astype(str), return_inverse=True)
        order = np.argsort(code, kind="stable")
        counts = np.bincount(code)
        layouts.append((rows[order], np.cumsum(counts) - counts, counts))
    diffs = np.empty(reps)
    for r in range(reps):
        uar = []
        for rows, starts, counts in layouts:
            draw = rng.integers(0, len(counts), len(counts))
            n = counts[draw]
            idx = rows[np.repeat(starts[draw] - np.cumsum(n) + n, n) + np.arange(n.sum())]
            uar.append(uar_of(y[idx], pred[idx], n_classes)[0])
        diffs[r] = uar[0] - uar[1]
    return [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]


def gap_warnings(by: dict[str, dict], threshold: float = DEFAULT_GAP_WARNING) -> list[str]:
    """One sentence per grouping whose UAR gap exceeds ``threshold``."""
    lines = []
    for column, res in by.items():
        gap = res["gap"].get("uar")
        if gap and gap["value"] > threshold:
            g = res["groups"]
            lines.append(f"UAR differs by {gap['value']:.3f} across {column} (above {threshold:g}): "
                         f"{gap['best']} {g[gap['best']]['uar']:.3f} vs {gap['worst']} {g[gap['worst']]['uar']:.3f}"
                         + _interval(gap))
    return lines


def groups_markdown(by: dict[str, dict], warnings: list[str]) -> list[str]:
    """The report's per-group section: a table per column, then the warnings."""
    lines = ["## Groups", ""]
    for column, res in by.items():
        lines += [f"### By {column}", "", "| group | n | UAR | accuracy | macro-F1 | ECE |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {g} | {m['n']} | {m['uar']:.3f} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['ece']:.3f} |"
                  for g, m in res["groups"].items()]
        gap = res["gap"].get("uar")
        lines += ["", f"Largest UAR gap: {gap['value']:.3f} ({gap['best']} over {gap['worst']}){_interval(gap)}." if gap
                  else "Fewer than two groups with values: no gap.", ""]
    lines += [f"> **Warning:** {w}" for w in warnings]
    return lines + ([""] if warnings else [])


def _interval(gap: dict) -> str:
    if "ci" not in gap:
        return ""
    unit = "speakers resampled within each group" if gap["ci_unit"] == "speaker" else "clips resampled"
    return f" (95% CI {gap['ci'][0]:+.3f} to {gap['ci'][1]:+.3f}, {unit})"
