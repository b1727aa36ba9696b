"""``prepare``: corpus on disk -> validated manifest with speaker-independent splits and a data report."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .corpora import HFOptions, hub_ids_of, parse_split_map, scan_corpus
from ..errors import BadLabel, InvalidCorpus
from ..labels import DEFAULT_FOR_CORPUS, LabelScheme, get_scheme, infer_scheme
from .manifest import MANIFEST_NAME, duplicates, inspect_files, replacing, save_manifest, save_manifest_scheme
from .splits import DEFAULT_FRACTIONS, random_holdout, speaker_holdout
from .label_map import map_rows, parse_label_map, rename_scheme


@dataclass
class PrepareResult:
    """What ``prepare`` wrote and found."""

    manifest: Path
    report: Path
    rows: int
    scheme: LabelScheme
    dropped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    label_mapping: dict = field(default_factory=dict)  # renamed (from, to, clips) and dropped label -> clips

    def summary_lines(self, out: str | Path) -> tuple[list[str], list[str]]:
        """What ``emovox prepare`` prints: lines for standard output, and notes for standard error."""
        said = []
        dropped_labels = self.label_mapping.get("dropped") or {}
        if dropped_labels:
            said.append(f"dropped {sum(dropped_labels.values())} clip(s) with unmapped labels: "
                        + ", ".join(f"{lab} ({n})" for lab, n in dropped_labels.items()))
        said += [f"dropped {path}: {reason}" for path, reason in self.dropped]
        if self.dropped:
            said.append(f"dropped {len(self.dropped)} invalid file(s), listed in {Path(out) / 'invalid.csv'}")
        shown = [self.report.read_text(), f"manifest: {self.manifest} ({self.rows} rows, scheme {self.scheme.name})"]
        return shown, said


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
    hf_label: str | None = None,
    hf_speaker: str | None = None,
    hf_split: str | Mapping[str, str] | None = None,
    canonical: bool = False,
    label_map: str | Path | Mapping[str, str] | None = None,
    unmapped: str = "error",
    path_pattern: str | None = None,
) -> PrepareResult:
    """Scan, validate every file, label, split and report.

    Args:
        corpus: One of ``CORPORA`` (crema-d, ravdess, emovo, emodb, iemocap, csv, folders, hf).
        root: The corpus folder (for csv also one CSV file).
        out: Folder for manifest.csv, the data report and (for hf) the clips as 16 kHz FLAC.
        scheme: A built-in scheme name or comma-separated labels (in id order); default: the
            corpus's scheme, else the built-in scheme with exactly the corpus's labels, else just
            those labels. Recorded beside the manifest (``manifest.scheme.json``) for ``train``.
        hf_label, hf_speaker: For ``corpus="hf"``: the label and speaker columns (default: a
            ClassLabel or a column named label/emotion, and speaker/speaker_id/actor/client_id).
        hf_split: For ``corpus="hf"``: ``"train=train,validation=dev,test=test"`` or a dict,
            emovox split -> dataset split (default: the dataset's own split names).
        canonical: Rename labels into the canonical emotion names (``ANG``/``anger``/``Wut``/``rab``
            -> ``angry``; see :mod:`emovox.labels`); the corpus's default scheme is renamed too
            (crema-d-21's ``ANG_HI`` -> ``angry_HI``).
        label_map: Explicit renames, applied first: ``"gio=happy,rab=angry"``, a two-column CSV
            file (from, to) or a dict. Composite labels map their emotion part.
        unmapped: ``"error"`` (default) refuses labels the mapping cannot name (and, with a
            ``scheme``, names outside it) in one line with their counts; ``"drop"`` drops those
            rows and the data report lists them. Only used when a mapping is asked for
            (``canonical``, ``label_map``) or with ``"drop"``.
        path_pattern: For ``folders`` and ``csv``: a regular expression over each file's path under
            ``root`` whose named groups fill speaker, label (folders), gender, sentence, intensity (with
            no named group, its first group is the speaker); a file it does not match is an invalid file.

    Returns:
        A :class:`PrepareResult` (manifest and report paths, rows kept, scheme, dropped files).

    Raises:
        InvalidCorpus: some files are invalid and ``drop_invalid`` is off (carries every problem).
        BadManifest: unusable root, CSV, dataset columns or splits.
        BadLabel: unknown scheme, or unmapped labels with ``unmapped="error"``.
        BadConfig: a malformed ``hf_split``, ``label_map`` or ``unmapped``.
    """
    hf = HFOptions(label=hf_label, speaker=hf_speaker, splits=parse_split_map(hf_split))
    scan = scan_corpus(corpus, root, audio_dir=Path(out) / "audio", hf=hf, progress=progress,
                       path_pattern=path_pattern)
    mapping = _map_labels(scan, corpus=corpus, root=root, scheme=scheme, canonical=canonical, label_map=label_map,
                          unmapped=unmapped)
    chosen = mapping["scheme"]
    problems = list(scan.problems)
    base = ["path", "speaker", "sentence", "emotion", "intensity", "label", "split"]
    df = pd.DataFrame(scan.rows, columns=[*base, *(k for k in dict.fromkeys(k for r in scan.rows for k in r) if k not in base)])
    checked = inspect_files(list(df["path"]), workers=workers, progress=progress)
    df["duration"] = [c[0] for c in checked]
    bad = {i: c[2] for i, c in enumerate(checked) if c[2]}
    chosen = chosen or infer_scheme(df["label"].where(df["label"] != "", df["emotion"])[~df.index.isin(list(bad))])
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
    manifest = save_manifest(df, out / MANIFEST_NAME)  # COLUMNS, then group columns that hold values
    save_manifest_scheme(manifest, chosen)
    from .report import write_data_report

    source = {"corpus": corpus, "root": str(Path(root).resolve()), "hub_ids": hub_ids_of(Path(root)) if corpus == "hf" else []}
    report = write_data_report(df, out, notes=notes, title=f"Data report: {corpus} corpus at {root}", source=source,
                               scheme=chosen, label_mapping=mapping.get("summary"))
    return PrepareResult(manifest, report, len(df), chosen, problems, notes, mapping.get("summary") or {})


def _map_labels(scan, *, corpus: str, root, scheme: str | None, canonical: bool, label_map, unmapped: str) -> dict:
    """Rename the scan's labels in place when a mapping is asked for; return the scheme (the one
    given, else the corpus's default, renamed the same way; None: infer it from the labels) and the
    mapping's summary. A given scheme's names the vocabulary does not know stay as written."""
    chosen = get_scheme(scheme) if scheme else (get_scheme(DEFAULT_FOR_CORPUS[corpus]) if corpus in DEFAULT_FOR_CORPUS
                                                else None)
    renames = parse_label_map(label_map)
    if not (canonical or renames or unmapped != "error"):
        return {"scheme": chosen}
    if chosen is not None:
        chosen = rename_scheme(chosen, label_map=renames, canonical=canonical, keep_unknown=bool(scheme))
    mapped = map_rows(scan.rows, label_map=renames, canonical=canonical, unmapped=unmapped,
                      scheme=chosen if scheme else None, where=str(root))
    if scan.rows and not mapped.rows:
        raise BadLabel(f"{root}: no clip is left after the label mapping (dropped: "
                       f"{', '.join(f'{lab} ({n})' for lab, n in mapped.dropped.items())})")
    scan.rows = mapped.rows
    summary = {"canonical": canonical, "label_map": renames, "unmapped": unmapped, **mapped.summary()}
    return {"scheme": chosen, "summary": summary}


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
        return _complete(df, given, seed=seed)
    if (given != "").any():
        n = int((given == "").sum())
        raise InvalidCorpus([("split column", f"{n} row(s) have no split while others do; fill them all or none")])
    if (df["speaker"].astype(str) == "").any():
        note = ("no speaker ids: splits are random and stratified, so a speaker can be in train and test and "
                "results will be optimistic; add a `speaker` column (or, for folders, --path-pattern) for honest, "
                "speaker-independent splits")
        return random_holdout(df, fractions=fractions, seed=seed), note
    return speaker_holdout(df, fractions=fractions, seed=seed, test_speakers=test_speakers), ""


def _complete(df: pd.DataFrame, given: pd.Series, *, seed: int) -> tuple[pd.Series, str]:
    """Given splits, with validation and/or test carved out of train's speakers when the corpus
    gives train but not them (many published datasets have train and test only)."""
    present = set(given)
    missing = [s for s in ("validation", "test") if s not in present]
    if "train" not in present or not missing:
        return given, ""
    train = df[given == "train"]
    fr = tuple(f if name == "train" or name in missing else 0.0
               for name, f in zip(("train", "validation", "test"), DEFAULT_FRACTIONS))
    if (train["speaker"].astype(str) == "").any():
        how = "random rows (no speaker ids)"
        if len(missing) == 2:
            carved = random_holdout(train, fractions=fr, seed=seed)
        else:
            from sklearn.model_selection import train_test_split

            share = DEFAULT_FRACTIONS[("validation", "test").index(missing[0]) + 1]
            _, held = train_test_split(np.arange(len(train)), test_size=share / (share + DEFAULT_FRACTIONS[0]),
                                       random_state=seed)
            carved = pd.Series("train", index=train.index)
            carved.iloc[held] = missing[0]
    else:
        carved, how = speaker_holdout(train, fractions=fr, seed=seed), "train's speakers, speaker-disjoint"
    out = given.copy()
    out[train.index] = carved.to_numpy()
    return out, f"the corpus gives no {' or '.join(missing)} split: carved out of {how}"


def _write_invalid(problems: list[tuple[str, str]], out: Path) -> None:
    path = out / "invalid.csv"
    if problems:
        with replacing(path) as tmp:
            pd.DataFrame(problems, columns=["path", "reason"]).to_csv(tmp, index=False)
    elif path.exists():
        path.unlink()
