"""The data report: what a user should know about a manifest before training on it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..figures import save_figure
from ..labels import LabelScheme
from .manifest import SPLITS
from .splits import leaked_speakers

CONFOUNDERS = ("sentence", "speaker")
FACTORS = ("label", "emotion", "intensity")
CONFOUND_THRESHOLD = 0.2  # share of a factor's entropy a confounder may explain before a warning


def describe(df: pd.DataFrame) -> dict:
    """Numbers behind the report: counts, speakers, durations and the majority baseline per split."""
    splits = [s for s in SPLITS if s in set(df["split"])]
    counts = pd.crosstab(df["label"], df["split"]).reindex(columns=splits, fill_value=0)
    out: dict = {"n": int(len(df)), "labels": sorted(df["label"].unique()), "splits": {}}
    for s in splits:
        part = df[df["split"] == s]
        vc = part["label"].value_counts()
        d = part["duration"].astype(float)
        out["splits"][s] = {
            "n": int(len(part)),
            "speakers": sorted(x for x in part["speaker"].unique() if x),
            "majority_label": str(vc.index[0]),
            "majority_accuracy": float(vc.iloc[0] / len(part)),
            "duration": {"total_s": float(d.sum()), "mean_s": float(d.mean()), "min_s": float(d.min()),
                         "median_s": float(d.median()), "max_s": float(d.max())},
        }
    out["counts"] = {lab: {s: int(counts.loc[lab, s]) for s in splits} for lab in counts.index}
    out["leaked_speakers"] = leaked_speakers(df)
    return out


def confounds(df: pd.DataFrame) -> list[str]:
    """Warnings for labels predictable from a non-acoustic factor (sentence, speaker).

    For each factor (label, emotion, intensity) and confounder, the uncertainty coefficient
    U = (H(factor) - H(factor | confounder)) / H(factor) says what share of the factor's entropy
    the confounder explains (0: independent, 1: determines it), with the Miller-Madow small-sample
    bias removed so many speakers with few clips each do not look predictive. CREMA-D's
    intensities, which occur only in sentence IEO, give U near 0.5.
    """
    warnings = []
    for conf in CONFOUNDERS:
        if df[conf].astype(str).str.strip().eq("").all() or df[conf].nunique() < 2:
            continue
        for factor in FACTORS:
            if df[factor].nunique() < 2 or (factor != "label" and df[factor].equals(df["label"])):
                continue
            u = uncertainty_coefficient(df[conf].astype(str), df[factor].astype(str))
            if u >= CONFOUND_THRESHOLD:
                warnings.append(
                    f"{factor} is predictable from {conf} alone ({conf} explains {u:.0%} of its entropy): "
                    f"{_where(df, factor, conf)} — a model can learn the {conf} instead of the emotion; "
                    f"report results per {conf} or train without this {factor}"
                )
    return warnings


def uncertainty_coefficient(conf: pd.Series, factor: pd.Series) -> float:
    """Theil's U of ``factor`` given ``conf``, bias-corrected, clipped to [0, 1]."""
    table = pd.crosstab(conf, factor).to_numpy(float)
    n = table.sum()

    def entropy(counts: np.ndarray) -> float:
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum() + (len(p) - 1) / (2 * counts.sum()))

    h = entropy(table.sum(axis=0))
    if h <= 0:
        return 0.0
    h_cond = sum(row.sum() / n * entropy(row) for row in table if row.sum() > 0)
    return float(np.clip((h - h_cond) / h, 0.0, 1.0))


def _where(df: pd.DataFrame, factor: str, conf: str, limit: int = 4) -> str:
    """Describe values of ``factor`` that occur with only a few values of ``conf``."""
    n_conf = df[conf].nunique()
    parts = []
    for value, group in df.groupby(factor):
        seen = sorted(group[conf].unique())
        if len(seen) <= max(1, n_conf // 2):
            parts.append(f"{value} only in {conf} {', '.join(seen[:5])}{'…' if len(seen) > 5 else ''}")
    return "; ".join(parts[:limit]) or f"its distribution differs strongly between {conf} values"


def write_data_report(df: pd.DataFrame, out_dir: str | Path, *, notes: list[str] = (),
                      title: str = "Data report", source: dict | None = None, scheme: LabelScheme | None = None,
                      label_mapping: dict | None = None) -> Path:
    """Write ``data_report.md``, ``data_report.json`` and ``class_balance.png`` (+ CSV) into ``out_dir``.
    ``source`` (corpus, root, hub dataset ids) is kept in the JSON for the model card; ``scheme``
    (the labels training will use, in id order) is named in both and orders the label table;
    ``label_mapping`` (prepare's renames and the labels it dropped) gets its own section."""

    out_dir = Path(out_dir)
    d = describe(df)
    if scheme is not None:
        d["scheme"] = scheme.to_dict()
    if label_mapping is not None:
        d["label_mapping"] = label_mapping
    warns = list(notes) + confounds(df)
    if d["leaked_speakers"]:
        warns.insert(0, f"speakers in more than one split: {d['leaked_speakers']}; results will be optimistic")
    counts = pd.DataFrame(d["counts"]).T.reindex(columns=list(d["splits"]))
    plot_class_balance(counts, out_dir / "class_balance.png")
    (out_dir / "data_report.json").write_text(json.dumps({**d, "warnings": warns, "source": source or {}}, indent=2))
    path = out_dir / "data_report.md"
    path.write_text(render_markdown(d, counts, warns, title))
    return path


def render_markdown(d: dict, counts: pd.DataFrame, warns: list[str], title: str) -> str:
    """The report as markdown: warnings first, then splits, then counts per label."""
    lines = [f"# {title}", "", f"{d['n']} utterances, {len(d['labels'])} labels.", ""]
    if d.get("scheme"):
        sc = d["scheme"]
        lines += [f"Label scheme for training: **{sc['name']}**, {len(sc['labels'])} classes in id order: "
                  f"{', '.join(sc['labels'])} (recorded in manifest.scheme.json; `train` uses it unless the "
                  "config names `data.scheme`).", ""]
    if warns:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warns] + [""]
    if d.get("label_mapping") is not None:
        lines += mapping_markdown(d["label_mapping"])
    lines += ["## Splits", "", "| split | clips | speakers | hours | mean s | min s | max s | majority label | majority acc |",
              "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for s, v in d["splits"].items():
        du = v["duration"]
        lines.append(f"| {s} | {v['n']} | {len(v['speakers'])} | {du['total_s'] / 3600:.2f} | {du['mean_s']:.2f} | "
                     f"{du['min_s']:.2f} | {du['max_s']:.2f} | {v['majority_label']} | {v['majority_accuracy']:.1%} |")
    lines += ["", "## Speakers per split", ""]
    for s, v in d["splits"].items():
        lines.append(f"- {s}: {', '.join(v['speakers']) or '(no speaker ids)'}")
    lines += ["", "## Clips per label", "", "| label | " + " | ".join(counts.columns) + " | total |",
              "|---|" + "---:|" * (len(counts.columns) + 1)]
    for lab, r in counts.iterrows():
        lines.append(f"| {lab} | " + " | ".join(str(int(x)) for x in r) + f" | {int(r.sum())} |")
    lines += ["", "![class balance](class_balance.png)", ""]
    return "\n".join(lines)


def mapping_markdown(m: dict) -> list[str]:
    """The label-mapping section: how labels were renamed and which rows were dropped."""
    how = ", ".join(x for x in ("canonical names" if m.get("canonical") else "",
                                "--label-map" if m.get("label_map") else "") if x) or "no renames"
    lines = ["## Label mapping", "", f"Labels mapped with {how}; unmapped labels: {m.get('unmapped', 'error')}.", ""]
    if m.get("renamed"):
        lines += ["| from | to | clips |", "|---|---|---:|"] + [f"| {r['from']} | {r['to']} | {r['clips']} |"
                                                              for r in m["renamed"]] + [""]
    dropped = m.get("dropped") or {}
    if dropped:
        lines += [f"Dropped {sum(dropped.values())} clip(s) with unmapped labels: "
                  + ", ".join(f"{lab or '(empty)'} ({n})" for lab, n in dropped.items()) + ".", ""]
    return lines


def plot_class_balance(counts: pd.DataFrame, out_path: Path) -> Path:
    """Grouped bars of examples per label and split, so imbalance and missing classes show.

    Args:
        counts: Index = label, columns = split names (``train``, ``validation``, ``test``).
        out_path: The PNG path; the same numbers go to the ``.csv`` beside it.

    Returns:
        The PNG path.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(counts) + 2.0), 4.5), constrained_layout=True)
    counts.plot.bar(ax=ax, edgecolor="black", linewidth=0.3)
    ax.set(xlabel=counts.index.name or "label", ylabel="utterances", title="class balance by split")
    counts.to_csv(out_path.with_suffix(".csv"), index_label=counts.index.name or "label")
    return save_figure(fig, out_path)
