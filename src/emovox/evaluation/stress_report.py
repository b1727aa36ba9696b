"""The stress report's files: ``stress.json``, ``stress.csv`` (the numbers), ``stress.png`` (UAR
drop per condition with its bootstrap interval) and ``report.md``."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..figures import save_figure

FAMILY_NOTES = {
    "white": "white Gaussian noise at the SNR over the whole clip",
    "pink": "pink (1/f) noise at the SNR over the whole clip",
    "babble": "4 other speakers of the same split, summed, at the SNR",
    "reverb": "synthetic room impulse response (exponentially decaying noise) with that RT60",
    "telephone": "8 kHz, 300-3400 Hz band-pass (4th-order Butterworth), back to 16 kHz",
    "gsm": "telephone band, then GSM 06.10 full rate (13 kbit/s) through libsndfile",
    "mp3": "MPEG layer III at a constant bitrate through libsndfile",
    "opus": "Ogg Opus at that bitrate through libsndfile",
    "vorbis": "Ogg Vorbis at that quality (0 = lowest) through libsndfile",
    "aac": "AAC-LC at a constant bitrate through FFmpeg (PyAV), what phones record",
    "gain": "level change in floating point, not clipped",
    "clip": "hard clipping at the level that share of samples exceeds",
    "resample": "through the listed rates (soxr) and back to 16 kHz",
}


def stress_table(result: dict) -> pd.DataFrame:
    """One row per condition (clean first): name, family, params, metrics, drop and interval."""
    clean = {"name": "clean", "family": "clean", "params": "", **_flat(result["clean"]), "uar_drop": 0.0,
             "uar_drop_low": 0.0, "uar_drop_high": 0.0, "flipped": 0.0}
    rows = [clean] + [{**_flat({k: v for k, v in r.items() if k != "uar_drop_ci"}), "params": json.dumps(r["params"]),
                       "uar_drop_low": r["uar_drop_ci"][0], "uar_drop_high": r["uar_drop_ci"][1]}
                      for r in result["conditions"]]
    return pd.DataFrame(rows)


def _flat(row: dict) -> dict:
    """Per-group UARs as columns ``uar[gender=female]``, ``gap[gender]``."""
    out = {k: v for k, v in row.items() if k != "groups"}
    for column, g in row.get("groups", {}).items():
        out.update({f"uar[{column}={k}]": v for k, v in g["uar"].items()})
        out[f"gap[{column}]"] = g["gap"]
    return out


def summary_lines(result: dict, out: str | Path) -> list[str]:
    """What ``emovox stress`` prints: the clean UAR, each condition's UAR and drop, the report's path."""
    lines = [f"clean: n={result['clean']['n']} UAR {result['clean']['uar']:.4f}"]
    lines += [f"{r['name']:>16}: UAR {r['uar']:.4f} ({r['uar_drop']:+.4f})" for r in result["conditions"]]
    return lines + [f"report: {Path(out) / 'report.md'}"]


def write_stress_report(out: Path, result: dict) -> list[Path]:
    """Write the four files into ``out``; returns their paths."""
    out = Path(out)
    paths = [out / "stress.json", out / "stress.csv", out / "stress.png", out / "report.md"]
    paths[0].write_text(json.dumps(result, indent=2))
    table = stress_table(result)
    table.to_csv(paths[1], index=False, float_format="%.5f")
    plot_stress(table, paths[2], clean_uar=result["clean"]["uar"])
    paths[3].write_text(_markdown(result, table))
    return paths


def plot_stress(table: pd.DataFrame, path: Path, *, clean_uar: float) -> Path:
    """Horizontal bars: UAR lost per condition (clean UAR minus the condition's), its paired
    bootstrap 95% interval as whiskers, the value written beside each bar."""
    rows = table[table["name"] != "clean"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.32 * max(1, len(rows))), constrained_layout=True)
    families = list(dict.fromkeys(rows["family"]))
    colours = {f: plt.get_cmap("tab20")(i % 20) for i, f in enumerate(families)}
    err = [rows["uar_drop"] - rows["uar_drop_low"], rows["uar_drop_high"] - rows["uar_drop"]]
    ax.barh(rows["name"], rows["uar_drop"], xerr=err, color=[colours[f] for f in rows["family"]],
            edgecolor="black", capsize=2)
    for y, (drop, high) in enumerate(zip(rows["uar_drop"], rows["uar_drop_high"])):
        ax.text(max(high, drop, 0) + 0.005, y, f"{drop:+.3f}", va="center", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.margins(x=0.15)
    ax.set(xlabel="UAR drop (clean - condition); whiskers: 95% paired bootstrap",
           title=f"stress: clean UAR {clean_uar:.3f}")
    return save_figure(fig, path)


def _markdown(result: dict, table: pd.DataFrame) -> str:
    clean = result["clean"]
    lines = [f"# Stress test: {result['split']} split", "",
             f"- models: {', '.join(result['model'])}", f"- manifest: {result['manifest']}",
             f"- clips: {clean['n']} from {len(result['speakers'])} speakers; seed {result['seed']}",
             "- every condition is made in memory from the clean clips (nothing is written to the corpus)", "",
             "| condition | parameters | UAR | drop (95% CI) | accuracy | macro-F1 | ECE | flipped |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in table.to_dict("records"):
        ci = "" if r["name"] == "clean" else f" ({r['uar_drop_low']:+.3f}, {r['uar_drop_high']:+.3f})"
        lines.append(f"| {r['name']} | {r['params'] or '—'} | {r['uar']:.3f} | {r['uar_drop']:+.3f}{ci} | "
                     f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['ece']:.3f} | {r['flipped']:.1%} |")
    lines += _group_lines(result, table)
    worst = max(result["conditions"], key=lambda r: r["uar_drop"], default=None)
    if worst:
        lines += ["", f"Largest loss: **{worst['name']}**, UAR {worst['uar']:.3f} ({worst['uar_drop']:+.3f})."]
    lines += ["", "![UAR drop per condition](stress.png)", "", "## Conditions", ""]
    lines += [f"- `{f}`: {FAMILY_NOTES[f]}" for f in dict.fromkeys(r["family"] for r in result["conditions"])]
    lines += ["", "Drop = clean UAR - condition UAR on the same clips; the interval resamples clips (paired). "
              "Flipped = share of clips whose predicted label changed. Numbers: `stress.json`, `stress.csv`.", ""]
    return "\n".join(lines)


def _group_lines(result: dict, table: pd.DataFrame) -> list[str]:
    """Per grouping column: UAR of each group under each condition, and the gap."""
    lines = []
    for column in result.get("by", []):
        cols = [c for c in table.columns if c.startswith(f"uar[{column}=")]
        names = [c[len(column) + 5:-1] for c in cols]
        lines += ["", f"### UAR by {column}", "", "| condition | " + " | ".join(names) + " | gap |",
                  "|---|" + "---:|" * (len(names) + 1)]
        for r in table.to_dict("records"):
            gap = r[f"gap[{column}]"]
            lines.append(f"| {r['name']} | " + " | ".join(f"{r[c]:.3f}" for c in cols)
                         + f" | {'—' if gap is None or gap != gap else f'{gap:.3f}'} |")
    return lines
