"""What ``--segment vad`` rows become besides JSONL/CSV/Parquet: RTTM (the diarization tools'
format, with each turn's emotion) and a timeline PNG per file (one lane per speaker, coloured by
emotion, confidence as opacity), the numbers it shows beside it as CSV.

RTTM lines are the standard ten fields, ``SPEAKER <file> 1 <start> <duration> <emotion> <NA>
<speaker> <score> <NA>``: the emotion sits in the orthography field and its probability in the
confidence field, both of which diarization scorers (pyannote, dscore, md-eval) ignore, so the
file scores as plain diarization.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import IO, Iterable, Iterator

from ..errors import BadConfig

UNKNOWN_SPEAKER = "S?"


def rttm_id(path: str) -> str:
    """A file id without spaces (RTTM fields are space-separated): the file name's stem."""
    return re.sub(r"\s+", "_", Path(path).stem) or "recording"


def rttm_lines(rows: Iterable[dict]) -> Iterator[str]:
    """One RTTM line per segment row (summary and error rows are skipped)."""
    for r in rows:
        if "start" not in r or "summary" in r or "error" in r:
            continue
        label = r.get("label") or "<NA>"
        score = f"{r['score']:.4f}" if r.get("score") is not None else "<NA>"
        yield (f"SPEAKER {rttm_id(r['path'])} 1 {r['start']:.3f} {r['end'] - r['start']:.3f} {label} <NA> "
               f"{r.get('speaker') or UNKNOWN_SPEAKER} {score} <NA>")


def plot_timeline(rows: list[dict], out: str | Path, *, labels: list[str] | None = None) -> Path:
    """Draw one file's segment rows as a per-speaker timeline PNG at ``out`` (``.png`` added when
    missing) and write the segments it shows beside it as ``.csv``; returns the PNG path."""
    import matplotlib.colors as mcolors

    from ..figures import plt, save_figure

    out = Path(out)
    png = out if out.suffix == ".png" else out.with_name(out.name + ".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    segs = [r for r in rows if "start" in r and "summary" not in r and "error" not in r]
    _write_csv(segs, png.with_suffix(".csv"))
    speakers = list(dict.fromkeys(r.get("speaker") or UNKNOWN_SPEAKER for r in segs)) or [UNKNOWN_SPEAKER]
    emotions = labels or sorted({r["label"] for r in segs})
    palette = plt.get_cmap("tab10" if len(emotions) <= 10 else "tab20")
    colour = {e: palette(i % palette.N) for i, e in enumerate(emotions)}
    end = max([r["end"] for r in segs], default=1.0)
    fig, ax = plt.subplots(figsize=(max(6.0, min(20.0, end / 4)), 1.0 + 0.6 * len(speakers)), constrained_layout=True)
    for r in segs:
        lane = speakers.index(r.get("speaker") or UNKNOWN_SPEAKER)
        rgba = mcolors.to_rgba(colour.get(r["label"], "grey"), alpha=0.25 + 0.75 * float(r["score"]))
        ax.broken_barh([(r["start"], r["end"] - r["start"])], (lane - 0.4, 0.8), facecolors=[rgba])
    ax.set_yticks(range(len(speakers)), speakers)
    ax.set_ylim(len(speakers) - 0.5, -0.5)
    ax.set_xlim(0, end)
    ax.set_xlabel("seconds")
    ax.set_title(f"{Path(segs[0]['path']).name if segs else png.stem}: emotion per speaker (opacity = confidence)",
                 fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[e]) for e in emotions if any(r["label"] == e for r in segs)]
    names = [e for e in emotions if any(r["label"] == e for r in segs)]
    if handles:
        ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return save_figure(fig, png)


def _write_csv(segs: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "speaker", "label", "score"])
        for r in segs:
            w.writerow([r["start"], r["end"], r.get("speaker", ""), r["label"], f"{r['score']:.5f}"])


def with_outputs(rows: Iterable[dict], *, rttm: str | Path | None = None, plot: str | Path | None = None,
                 labels: list[str] | None = None) -> Iterator[dict]:
    """Pass rows through unchanged while writing the RTTM file and one timeline per file (in the
    folder ``plot``, named after the file) as each file's rows complete.

    Raises:
        BadConfig: the RTTM file or the plot folder cannot be written.
    """
    handle: IO | None = None
    try:
        if rttm:
            Path(rttm).parent.mkdir(parents=True, exist_ok=True)
            handle = open(rttm, "w")
        if plot:
            Path(plot).mkdir(parents=True, exist_ok=True)
            import matplotlib  # noqa: F401  (before any file is scored: the runtime install has none)
    except OSError as exc:
        raise BadConfig(f"{exc.filename}: cannot be written ({exc.strerror})") from None
    except ImportError:
        raise BadConfig("--plot needs matplotlib, which the runtime install leaves out: pip install matplotlib, "
                        "or pip install 'emovox[train]'") from None
    current: list[dict] = []
    try:
        for row in rows:
            if "start" in row and "summary" not in row:
                current.append(row)
            elif row.get("summary") == "file" or "error" in row:
                _flush(current, handle, plot, labels)
                current = []
            yield row
        _flush(current, handle, plot, labels)
    finally:
        if handle is not None:
            handle.close()


def _flush(segs: list[dict], handle: IO | None, plot: str | Path | None, labels: list[str] | None) -> None:
    if handle is not None:
        for line in rttm_lines(segs):
            handle.write(line + "\n")
        handle.flush()
    if plot and segs:
        plot_timeline(segs, Path(plot) / f"{rttm_id(segs[0]['path'])}.timeline.png", labels=labels)
