"""Several corpora in one training set: prepared manifests combined into one, each keeping its
splits and speakers, with the ``corpus`` column saying where a row came from.

``train``, ``cv``, ``search`` and ``matrix`` take several manifests; they combine them here into
one manifest written into their output folder (so the run dir records exactly what it trained on),
and everything after reads that one file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import BadManifest
from ..labels import LabelScheme
from .manifest import MANIFEST_NAME, load_manifest, manifest_scheme, save_manifest, save_manifest_scheme


def manifest_list(manifest: str | Path | Sequence[str | Path]) -> list[Path]:
    """One manifest or several, as a list of paths."""
    if isinstance(manifest, (str, Path)):
        return [Path(manifest)]
    return [Path(m) for m in manifest]


def corpus_names(manifests: Sequence[str | Path], frames: Sequence[pd.DataFrame]) -> list[str]:
    """A distinct name per manifest: its ``corpus`` column when that is one value no other manifest
    has, else the manifest's folder name (two ``csv`` corpora stay apart)."""
    own = [sorted({str(c) for c in df["corpus"] if str(c)}) for df in frames]
    names = [o[0] if len(o) == 1 else "" for o in own]
    folder = [Path(m).resolve().parent.name if Path(m).suffix else Path(m).resolve().name for m in manifests]
    out = [n if n and names.count(n) == 1 else f or n for n, f in zip(names, folder)]
    if len(set(out)) < len(out):
        out = [f"{n}{i + 1}" for i, n in enumerate(out)]
    return out


def combined_scheme(manifests: Sequence[str | Path], present: set[str]) -> LabelScheme | None:
    """The scheme of combined manifests: their common recorded scheme when they all recorded the
    same one; else the union of the recorded schemes' labels (in order of appearance) that occur
    in the data, so no corpus brings classes no clip has (None when none recorded a scheme)."""
    schemes = [s for s in (manifest_scheme(m) for m in manifests) if s is not None]
    if not schemes:
        return None
    if all(s == schemes[0] for s in schemes) and len(schemes) == len(manifests):
        return schemes[0]
    labels = [lab for lab in dict.fromkeys(lab for s in schemes for lab in s.labels) if lab in present]
    labels += sorted(present - set(labels))
    return LabelScheme("custom", tuple(labels), all(s.composite for s in schemes))


def combine_manifests(manifests: Sequence[str | Path], out: str | Path, *, balance: bool = False) -> Path:
    """Write ``out`` (a manifest path, or a folder for ``manifest.csv``) holding every row of
    ``manifests``: ``corpus`` set per manifest (:func:`corpus_names`), speakers prefixed with it
    (``ravdess/01``: two corpora's speaker ids never merge), splits kept. With ``balance`` the
    train rows of smaller corpora are repeated (whole copies, then a seeded sample) until every
    corpus has as many train rows as the largest, so each weighs the same in the fit.

    Raises:
        BadManifest: fewer than two manifests, or a manifest that cannot be read.
    """
    paths = manifest_list(manifests)
    if len(paths) < 2:
        raise BadManifest(f"combining manifests needs two or more; got {len(paths)}")
    frames = [load_manifest(p) for p in paths]
    names = corpus_names(paths, frames)
    for df, name in zip(frames, names):
        df["corpus"] = name
        df["speaker"] = [f"{name}/{s}" if str(s) else "" for s in df["speaker"]]
    if balance:
        frames = balanced(frames)
    out = Path(out)
    out = out / MANIFEST_NAME if out.suffix != ".csv" else out
    combined = pd.concat(frames, ignore_index=True)
    path = save_manifest(combined, out)
    scheme = combined_scheme(paths, set(combined["label"]))
    if scheme is not None:
        save_manifest_scheme(path, scheme)
    return path


def balanced(frames: list[pd.DataFrame], seed: int = 0) -> list[pd.DataFrame]:
    """Each frame's train rows repeated up to the largest frame's train count (other splits as they are)."""
    target = max(int((df["split"] == "train").sum()) for df in frames)
    out = []
    for df in frames:
        train = df[df["split"] == "train"]
        if train.empty or len(train) == target:
            out.append(df)
            continue
        whole, rest = divmod(target, len(train))
        extra = [train] * (whole - 1) + [train.sample(n=rest, random_state=seed)] if rest else [train] * (whole - 1)
        out.append(pd.concat([df, *extra], ignore_index=True))
    return out
