"""``emovox matrix``: the cross-corpus grid. Train on each corpus (and, with three or more, on all
but one), score every corpus, and write the train x test UAR grid as CSV, JSON, a heatmap PNG and
report.md, in one command.

A cell on the diagonal is in-corpus: the corpus's own test split (speakers the model never saw). A
cell off it is cross-corpus: every clip of a corpus the model never saw, scored among the labels
that corpus has. By default every corpus is first cut to the labels all of them share (the usual
cross-corpus protocol), so rows and columns are comparable.

Layout of ``out``::

    data/NAME/manifest.csv       each corpus (shared labels), its own splits
    data/NAME/all-test.csv       the same rows, all in split test (for cross-corpus cells)
    train-A+B/run/, .../eval-C/  one run per train set, one evaluation per test corpus
    matrix.csv/.json/.png        the grid
    report.md
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..data.combine import corpus_names, manifest_list
from ..data.manifest import load_manifest, manifest_scheme, save_manifest, save_manifest_scheme
from ..errors import BadManifest
from ..labels import LabelScheme
from .runlock import holds_run_lock


@dataclass
class MatrixResult:
    """The grid (rows: train sets, columns: test corpora; UAR) and where it was written."""

    uar: pd.DataFrame
    csv: Path
    png: Path
    report: Path


@holds_run_lock("matrix")
def matrix(*, config: str | Path | None = None, manifests: Sequence[str | Path], out: str | Path,
           model: str | None = None, overrides: Sequence[str] = (), shared_labels: bool = True,
           progress: bool = True) -> MatrixResult:
    """Train on each corpus (and on all but one, with three or more), evaluate on every corpus.

    Args:
        config, model, overrides: The recipe, as for ``train``.
        manifests: Two or more prepared manifests, one corpus each.
        out: Output folder (runs are reused when the command is run again).
        shared_labels: Cut every corpus to the labels all of them have (off: each model keeps its
            corpus's labels and scores other corpora among the labels they share with it).

    Returns:
        A :class:`MatrixResult`.

    Raises:
        BadManifest: fewer than two manifests, or corpora that share fewer than two labels.
        BadConfig: bad config or overrides, as for ``train``.
    """
    out = Path(out)
    paths = manifest_list(manifests)
    if len(paths) < 2:
        raise BadManifest(f"matrix needs two or more --manifest (one corpus each); got {len(paths)}")
    corpora = _corpus_manifests(paths, out / "data", shared_labels)
    grid: dict[str, dict[str, float]] = {}
    for train_set in train_sets(list(corpora)):
        row = "+".join(train_set)
        run = _train(train_set, corpora, out / f"train-{row}", config=config, model=model,
                     overrides=overrides, progress=progress)
        grid[row] = {}
        for name, (own, everything) in corpora.items():
            inside = name in train_set
            m = _evaluate(run, own if inside else everything, out / f"train-{row}" / f"eval-{name}")
            grid[row][name] = m["uar"]
            _say(f"train {row} -> test {name} ({'in-corpus test split' if inside else 'cross-corpus'}): "
                 f"UAR {m['uar']:.4f} (n={m['n']})", progress)
    table = pd.DataFrame(grid).T.reindex(columns=list(corpora))
    return _write(out, table, corpora)


def train_sets(names: list[str]) -> list[tuple[str, ...]]:
    """Each corpus alone, then (three or more) all but one."""
    sets = [(n,) for n in names]
    if len(names) > 2:
        sets += [tuple(m for m in names if m != n) for n in names]
    return sets


def _corpus_manifests(paths: list[Path], folder: Path, shared: bool) -> dict[str, tuple[Path, Path]]:
    """Per corpus: its manifest (cut to the shared labels when ``shared``) and an all-test copy."""
    frames = [load_manifest(p) for p in paths]
    names = corpus_names(paths, frames)
    common = set.intersection(*(set(df["label"]) for df in frames))
    if shared and len(common) < 2:
        raise BadManifest("the corpora share fewer than two labels (" + "; ".join(
            f"{n}: {', '.join(sorted(set(df['label'])))}" for n, df in zip(names, frames)) +
            "); map them to one vocabulary first (emovox prepare --canonical / --label-map)")
    out = {}
    for path, name, df in zip(paths, names, frames):
        if shared:
            df = df[df["label"].isin(common)].reset_index(drop=True)
        df["corpus"] = name
        own = save_manifest(df, folder / name / "manifest.csv")
        scheme = manifest_scheme(path)
        labels = [lab for lab in (scheme.labels if scheme else sorted(set(df["label"]))) if lab in set(df["label"])]
        save_manifest_scheme(own, LabelScheme("custom", tuple(labels), bool(scheme and scheme.composite)))
        everything = save_manifest(df.assign(split="test"), folder / name / "all-test.csv")
        out[name] = (own, everything)
    return out


def _train(train_set: tuple[str, ...], corpora: dict, folder: Path, **kw) -> Path:
    from .train import train

    run = folder / "run"
    if not (run / "emovox.json").is_file():
        manifests = [corpora[n][0] for n in train_set]
        train(manifest=manifests[0] if len(manifests) == 1 else manifests, out=run, progress=kw.pop("progress"), **kw)
    return run


def _evaluate(run: Path, manifest: Path, out: Path) -> dict:
    from ..evaluation.evaluate import evaluate

    return evaluate(runs=[run], manifest=manifest, out=out, split="test")


def _write(out: Path, table: pd.DataFrame, corpora: dict) -> MatrixResult:
    from ..evaluation.plots import plot_matrix

    table.to_csv(out / "matrix.csv", index_label="train \\ test", float_format="%.4f")
    (out / "matrix.json").write_text(json.dumps({"uar": table.round(4).to_dict(orient="index")}, indent=2))
    png = plot_matrix(table, out / "matrix.png", title="UAR: train (rows) x test (columns); diagonal = in-corpus")
    labels = {n: sorted(set(pd.read_csv(m, dtype=str)["label"])) for n, (m, _) in corpora.items()}
    lines = ["# Cross-corpus matrix", "",
             "Rows: what the model trained on; columns: the corpus it was scored on. A cell in a corpus the "
             "model trained on scores that corpus's test split (unseen speakers); any other cell scores every "
             "clip of a corpus the model never saw, among the labels that corpus has.", "",
             "| train \\ test | " + " | ".join(table.columns) + " |", "|---|" + "---:|" * len(table.columns)]
    lines += [f"| {row} | " + " | ".join(f"{v:.3f}" for v in table.loc[row]) + " |" for row in table.index]
    lines += ["", *[f"- {n}: labels {', '.join(v)} (chance UAR {1 / len(v):.3f})" for n, v in labels.items()],
              "", "![matrix](matrix.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return MatrixResult(table, out / "matrix.csv", png, out / "report.md")


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)
