"""The summary of a speaker-grouped cross-validation, shared by ``emovox cv`` and the eGeMAPS
baseline: one row per fold, mean ± std over folds, ``cv_metrics.json`` and ``cv_report.md``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

SUMMARY_KEYS = ("accuracy", "uar", "macro_f1", "loss")


@dataclass
class CVResult:
    """What a cross-validation produced: the summary and where everything was written."""

    out: Path
    mean: dict[str, float]
    std: dict[str, float]
    per_fold: list[dict]
    confirmation: dict | None = None
    beside: dict[str, "CVResult"] | None = None  # other models on the same folds (cv --baseline: eGeMAPS)
    chance: float | None = None  # UAR of guessing

    def summary_lines(self) -> list[str]:
        """What ``emovox cv`` and ``emovox baseline --folds`` print."""
        lines = ["  ".join(f"{k} {self.mean[k]:.4f} ± {self.std[k]:.4f}" for k in ("uar", "accuracy", "macro_f1"))]
        if self.confirmation:
            c = self.confirmation
            lines.append(f"confirmation on held-out speakers {', '.join(c['speakers'])}: uar {c['uar']:.4f}  "
                         f"accuracy {c['accuracy']:.4f}  macro_f1 {c['macro_f1']:.4f}")
        for name, other in (self.beside or {}).items():
            lines.append(f"{name} on the same folds: uar {other.mean['uar']:.4f} ± {other.std['uar']:.4f}"
                         + (f"  (confirmation {other.confirmation['uar']:.4f})" if other.confirmation else ""))
        if self.chance is not None:
            lines.append(f"chance: uar {self.chance:.4f}")
        return lines + [f"report: {self.out / 'cv_report.md'}"]


def fold_row(fold: int, df: pd.DataFrame, metrics: dict) -> dict:
    """The per-fold table row: fold number, its test speakers, clip count and headline metrics."""
    test = df[df["split"] == "test"]
    row = {"fold": fold, "speakers": sorted(map(str, test["speaker"].unique())), "n": int(metrics["n"])}
    row.update({k: float(metrics[k]) for k in SUMMARY_KEYS if k in metrics})
    return row


def summarise_folds(rows: Sequence[dict], keys: Sequence[str] = SUMMARY_KEYS) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1) of each key over the folds that have it."""
    mean, std = {}, {}
    for key in keys:
        values = np.array([r[key] for r in rows if key in r], dtype=float)
        if values.size:
            mean[key] = float(values.mean())
            std[key] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean, std


def write_cv_outputs(out: Path, rows: Sequence[dict], info: dict, *, title: str,
                     confirmation: dict | None = None, beside: dict[str, CVResult] | None = None,
                     chance: float | None = None) -> CVResult:
    """Write ``cv_metrics.json`` and ``cv_report.md`` for finished folds.

    Args:
        out: The cross-validation folder.
        rows: One :func:`fold_row` per fold.
        info: Extra facts recorded in the JSON and the report (manifest, model, seed, ...).
        title: The report's heading.
        confirmation: The :func:`fold_row` of a run scored once on speakers no fold contains.
        beside: Other models' results on the same folds (name -> result), shown under the mean.
        chance: The UAR of guessing, shown last.
    """
    mean, std = summarise_folds(rows)
    payload = {**info, "folds": len(rows), "mean": mean, "std": std, "std_ddof": 1, "per_fold": list(rows)}
    if confirmation:
        payload["confirmation"] = confirmation
    if beside:
        payload["beside"] = {name: {"mean": o.mean, "std": o.std, "per_fold_uar": [r["uar"] for r in o.per_fold],
                                    "confirmation_uar": o.confirmation["uar"] if o.confirmation else None,
                                    "report": str(o.out / "cv_report.md")} for name, o in beside.items()}
    if chance is not None:
        payload["chance_uar"] = chance
    (out / "cv_metrics.json").write_text(json.dumps(payload, indent=2))
    keys = [k for k in SUMMARY_KEYS if k in mean]
    facts = [f"- {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in info.items()]
    lines = [f"# {title}", "", *facts, "",
             "| fold | test speakers | n | " + " | ".join(keys) + " |", "|---|---|---:|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {r['fold']} | {', '.join(r['speakers'])} | {r['n']} | "
                     + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    lines.append("| **mean ± std** | | " + str(sum(r["n"] for r in rows)) + " | "
                 + " | ".join(f"**{mean[k]:.3f} ± {std[k]:.3f}**" for k in keys) + " |")
    if confirmation:
        c = confirmation
        lines.append(f"| confirmation (held out of every fold) | {', '.join(c['speakers'])} | {c['n']} | "
                     + " | ".join(f"{c[k]:.3f}" if k in c else "" for k in keys) + " |")
    for name, o in (beside or {}).items():
        lines.append(f"| {name}, same folds: mean ± std | | | "
                     + " | ".join(f"{o.mean[k]:.3f} ± {o.std[k]:.3f}" if k in o.mean else "" for k in keys) + " |")
        if o.confirmation:
            lines.append(f"| {name}: confirmation | | | "
                         + " | ".join(f"{o.confirmation[k]:.3f}" if k in o.confirmation else "" for k in keys) + " |")
    if chance is not None:
        lines.append("| chance | | | " + " | ".join(f"{chance:.3f}" if k == "uar" else "" for k in keys) + " |")
    lines += ["", f"Standard deviation over {len(rows)} folds (sample, ddof=1). Every fold tests on "
              "speakers that neither its training nor its validation split contains."]
    if confirmation:
        lines.append("The confirmation speakers took part in no fold: choose recipes on the folds' mean, and read "
                     "the confirmation once, after choosing (trained on the manifest's train + validation splits).")
    (out / "cv_report.md").write_text("\n".join([*lines, ""]))
    return CVResult(out=out, mean=mean, std=std, per_fold=list(rows), confirmation=confirmation, beside=beside,
                    chance=chance)
