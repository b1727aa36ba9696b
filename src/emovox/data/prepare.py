"""``prepare``: corpus on disk -> validated manifest with speaker-independent splits and a data report."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from .corpora import scan_corpus
from ..errors import BadLabel, InvalidCorpus
from ..labels import DEFAULT_FOR_CORPUS, LabelScheme, get_scheme, infer_scheme
from .manifest import COLUMNS, MANIFEST_NAME, duplicates, inspect_files, replacing, save_manifest
from .splits import DEFAULT_FRACTIONS, random_holdout, speaker_holdout


@dataclass
class PrepareResult:
    """What ``prepare`` wrote and found."""

    manifest: Path
    report: Path
    rows: int
    scheme: LabelScheme
    dropped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prepare(
    *,
    corpus: str,
    root: str | Path,
    out: str | Path,
    scheme: str | None = None,
    seed: int = 0,
    test_speakers: Sequence[str] | None = None,
    drop_invalid: bool = False,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    workers: int | None = None,
    progress: bool = False,
) -> PrepareResult:
    """Scan, validate every file, label, split and report.

    Raises:
        InvalidCorpus: some files are invalid and ``drop_invalid`` is off (carries every problem).
        BadManifest: unusable root, CSV or splits.
        BadLabel: unknown scheme.
    """
    scan = scan_corpus(corpus, root)
    chosen = get_scheme(scheme) if scheme else (get_scheme(DEFAULT_FOR_CORPUS[corpus]) if corpus in DEFAULT_FOR_CORPUS else None)
    problems = list(scan.problems)
    df = pd.DataFrame(scan.rows, columns=["path", "speaker", "sentence", "emotion", "intensity", "label", "split"])
    checked = inspect_files(list(df["path"]), workers=workers, progress=progress)
    df["duration"] = [c[0] for c in checked]
    bad = {i: c[2] for i, c in enumerate(checked) if c[2]}
    chosen = chosen or infer_scheme(df["label"][~df.index.isin(list(bad))])
    for i, reason in _label_problems(df, chosen).items():
        bad.setdefault(i, reason)
    dup_problems, dup_warnings = duplicates(list(df["path"]), [c[1] for c in checked], list(df["label"]))
    for i, reason in dup_problems:
        bad.setdefault(i, reason)
    problems += [(df.at[i, "path"], bad[i]) for i in sorted(bad)]
    if problems and not drop_invalid:
        raise InvalidCorpus(problems)
    df = df.drop(index=list(bad)).reset_index(drop=True)
    df["corpus"] = corpus
    notes = list(scan.notes) + dup_warnings
    df["split"], split_note = _splits(df, fractions=fractions, seed=seed, test_speakers=test_speakers)
    notes += [split_note] if split_note else []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_invalid(problems, out)
    manifest = save_manifest(df[list(COLUMNS)], out / MANIFEST_NAME)
    from .report import write_data_report

    report = write_data_report(df, out, notes=notes, title=f"Data report: {corpus} corpus at {root}")
    return PrepareResult(manifest, report, len(df), chosen, problems, notes)


def _label_problems(df: pd.DataFrame, scheme: LabelScheme) -> dict[int, str]:
    """Fill label (or emotion/intensity) from the scheme; return rows whose codes have no label."""
    bad: dict[int, str] = {}
    for i, rec in enumerate(df.itertuples(index=False)):
        try:
            if rec.label:
                scheme.id(rec.label)
                emotion, intensity = scheme.split(rec.label)
                df.iat[i, df.columns.get_loc("emotion")] = rec.emotion or emotion
                df.iat[i, df.columns.get_loc("intensity")] = rec.intensity or intensity
            else:
                df.iat[i, df.columns.get_loc("label")] = scheme.label_for(rec.emotion, rec.intensity)
        except BadLabel as exc:
            bad[i] = str(exc)
    return bad


def _splits(df: pd.DataFrame, *, fractions, seed, test_speakers) -> tuple[pd.Series, str]:
    given = df["split"].astype(str)
    if (given != "").all():
        return given, ""
    if (given != "").any():
        n = int((given == "").sum())
        raise InvalidCorpus([("split column", f"{n} row(s) have no split while others do; fill them all or none")])
    if (df["speaker"].astype(str) == "").any():
        note = ("no speaker ids: splits are random and stratified, so a speaker can be in train and test and "
                "results will be optimistic; add a `speaker` column for honest, speaker-independent splits")
        return random_holdout(df, fractions=fractions, seed=seed), note
    return speaker_holdout(df, fractions=fractions, seed=seed, test_speakers=test_speakers), ""


def _write_invalid(problems: list[tuple[str, str]], out: Path) -> None:
    path = out / "invalid.csv"
    if problems:
        with replacing(path) as tmp:
            pd.DataFrame(problems, columns=["path", "reason"]).to_csv(tmp, index=False)
    elif path.exists():
        path.unlink()
