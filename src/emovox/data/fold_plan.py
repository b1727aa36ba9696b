"""Which speakers each cross-validation fold tests (``cv`` and ``baseline --folds``): K seeded,
speaker-grouped, label-stratified folds, or folds given by the user, as published protocols fix them
(EmoBox's speaker folds, IEMOCAP's leave-one-session-out, leave-one-speaker-out):

- ``--fold-speakers "1,2,3,4;5,6,7,8;..."``: the test speakers of each fold, folds apart by ``;``; or a
  file: JSON (a list of speaker lists, or an object of fold name -> speaker list), CSV with columns
  ``speaker,fold``, or plain text with one fold per line (speakers apart by commas or spaces);
- ``--fold-by COLUMN``: one fold per value of a manifest column (``session``, ``speaker``: leave one
  out), each speaker having one value;
- ``--fold-speakers emobox``: a published protocol by name, for the manifest's corpus: EmoBox's speaker
  folds for RAVDESS (6 x 4 actors) and EMOVO (leave one speaker out), read from EmoBox's test lists
  (``data/folds/<protocol>-<corpus>.txt``). EmoBox's EmoDB and Urdu folds split clips, not speakers,
  so they are not offered. A protocol needs the whole corpus: speakers it names that the manifest
  lacks are refused, listed.

A given name matches a manifest speaker exactly, else by number (``1`` matches ``01``). Speakers no
fold names only ever train (a note says which).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import BadConfig, BadManifest

DEFAULT_FOLDS = 5
PROTOCOLS = {"emobox": ("ravdess", "emovo")}  # name -> corpora it has speaker folds for (data/folds/)


def resolve_folds(df: pd.DataFrame, *, folds: int | None = None, fold_speakers: str | Path | None = None,
                  fold_by: str | None = None, held: Sequence[str] = ()) -> int | list[list[str]]:
    """``folds`` (default 5) for seeded folds, or the test speakers of each given fold, as the
    manifest spells them. ``held``: speakers kept out of every fold (``--confirm``'s test split).

    Raises:
        BadConfig: both ways of giving folds, an unreadable spec, or ``folds`` that disagrees with it.
        BadManifest: unknown or held speakers, an unknown column, a speaker in two folds, or a speaker
            with several values of ``fold_by``.
    """
    if fold_speakers is not None and fold_by:
        raise BadConfig("give the folds one way: --fold-speakers or --fold-by, not both")
    if fold_speakers is None and not fold_by:
        return DEFAULT_FOLDS if folds is None else int(folds)
    known = sorted(map(str, df["speaker"].astype(str).unique()))
    if fold_speakers is not None and str(fold_speakers) in PROTOCOLS:
        fold_speakers = _protocol_file(str(fold_speakers), df, known)
    if fold_by:
        groups = [[s for s in g if s not in held] for g in _by_column(df, fold_by)]
        groups = [g for g in groups if g]
    else:
        groups = [[_match(s, known) for s in g] for g in _parse(fold_speakers)]
    seen: dict[str, int] = {}
    for k, group in enumerate(groups, start=1):
        for s in group:
            if s in held:
                raise BadManifest(f"speaker {s} (fold {k}) is in the test split that --confirm keeps out of every fold")
            if s in seen:
                raise BadManifest(f"speaker {s} is in fold {seen[s]} and fold {k}: a speaker is tested in one fold only")
            seen[s] = k
    if len(groups) < 2:
        raise BadConfig(f"cross-validation needs at least 2 folds; {len(groups)} given")
    if folds is not None and int(folds) != len(groups):
        raise BadConfig(f"--folds {folds} but {len(groups)} folds are given; drop --folds")
    unused = [s for s in known if s not in seen and s not in held]
    if unused:
        logging.getLogger("emovox").info("speakers in no fold (they only ever train): %s", ", ".join(unused))
    return groups


def _protocol_file(name: str, df: pd.DataFrame, known: Sequence[str]) -> Path:
    """The packaged fold file of protocol ``name`` for the manifest's corpus.

    Raises:
        BadConfig: the protocol has no folds for this corpus (or the manifest mixes corpora).
        BadManifest: the protocol names speakers the manifest lacks."""
    from importlib.resources import files

    corpora = sorted(set(df["corpus"].astype(str))) if "corpus" in df.columns else []
    if len(corpora) != 1 or corpora[0] not in PROTOCOLS[name]:
        raise BadConfig(f"--fold-speakers {name}: folds for {', '.join(PROTOCOLS[name])} manifests (prepare --corpus "
                        f"{' or '.join(PROTOCOLS[name])}); this manifest's corpus is {', '.join(corpora) or 'not named'}")
    path = Path(str(files("emovox.data") / "folds" / f"{name}-{corpora[0]}.txt"))
    missing = sorted(s for s in _names(" ".join(path.read_text().split())) if s not in known)
    if missing:
        raise BadManifest(f"--fold-speakers {name}: the protocol tests speakers this manifest lacks "
                          f"({', '.join(missing)}); it needs the whole corpus")
    return path


def _parse(spec: str | Path) -> list[list[str]]:
    path = Path(str(spec))
    if not path.is_file():
        if not re.search(r"[;,]", str(spec)) and (path.suffix or "/" in str(spec)):
            raise BadConfig(f"--fold-speakers {spec}: no such file (or give the folds inline: 'A,B;C,D')")
        return [_names(part) for part in str(spec).split(";") if part.strip()]
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            lists = list(data.values()) if isinstance(data, dict) else data
            return [[str(s) for s in group] for group in lists]
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str)
            if not {"speaker", "fold"} <= set(table.columns):
                raise BadConfig(f"--fold-speakers {path}: needs columns speaker,fold (has {', '.join(table.columns)})")
            return [list(g["speaker"]) for _, g in table.groupby("fold", sort=False)]
        return [_names(line) for line in path.read_text().splitlines() if line.strip()]
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadConfig(f"--fold-speakers {path}: cannot read folds ({str(exc).splitlines()[0]})") from None


def _names(text: str) -> list[str]:
    return [s for s in re.split(r"[,\s]+", text.strip()) if s]


def _match(name: str, known: Sequence[str]) -> str:
    if name in known:
        return name
    if name.isdigit():
        same = [k for k in known if k.isdigit() and int(k) == int(name)]
        if len(same) == 1:
            return same[0]
    shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
    raise BadManifest(f"--fold-speakers: speaker {name!r} is not in the manifest (speakers: {shown})")


def _by_column(df: pd.DataFrame, column: str) -> list[list[str]]:
    if column not in df.columns:
        raise BadManifest(f"--fold-by {column}: no such manifest column (columns: {', '.join(df.columns)})")
    values = df[column].astype(str)
    per = values.groupby(df["speaker"].astype(str)).nunique()
    mixed = per[per > 1]
    if len(mixed):
        raise BadManifest(f"--fold-by {column}: speaker {mixed.index[0]} has {int(mixed.iloc[0])} values of {column}, "
                          "so its clips would be tested and trained on in different folds")
    return [sorted(map(str, df.loc[values == v, "speaker"].astype(str).unique())) for v in sorted(values.unique())]
