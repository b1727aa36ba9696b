"""Hugging Face ``datasets`` corpora: a folder written by ``Dataset.save_to_disk`` /
``DatasetDict.save_to_disk``, a folder of Parquet files (the Hub's layout), or an ``audiofolder``
layout (audio files with ``metadata.csv``/``metadata.jsonl``, split and label folders).

Audio is taken as the dataset stores it (``Audio(decode=False)``: bytes or a path) and decoded
with soundfile, as everywhere else in emovox (recent ``datasets`` decode through torchcodec and
FFmpeg, which emovox does not need); each clip is written once as 16 kHz FLAC under the output
folder, so the manifest points at ordinary files and stays the pivot.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ...errors import BadAudio, BadConfig, BadManifest
from ..audio import decode_bytes, load_audio, write_audio
from .csv_table import LABEL_COLUMNS, PATH_COLUMNS, SPLIT_ALIASES
from .demographics import group_columns, normalise_group
from .scan import Scan, row

SPEAKER_COLUMNS = ("speaker", "speaker_id", "speakerid", "actor", "actor_id", "client_id", "spk", "spk_id",
                   "speaker_name")
SENTENCE_COLUMNS = ("sentence", "sentence_id", "statement", "text", "transcript", "transcription")
EMOVOX_SPLITS = ("train", "validation", "test")
ALL = "all"  # the folder name of clips from a dataset whose one split emovox re-splits


@dataclass
class HFOptions:
    """Which columns and splits of a Hugging Face dataset to use (None: pick them by name)."""

    label: str | None = None
    speaker: str | None = None
    splits: Mapping[str, str] | None = None  # emovox split -> dataset split

    def given(self) -> bool:
        return bool(self.label or self.speaker or self.splits)


def parse_split_map(text: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """``"train=train,validation=dev,test=test"`` (emovox split = dataset split) as a dict.

    Raises:
        BadConfig: a pair without ``=``, an emovox split that is not train/validation/test, or a
            split named twice.
    """
    if text is None or isinstance(text, Mapping):
        return dict(text) if text else None
    out: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        ours, eq, theirs = (s.strip() for s in pair.partition("="))
        if not eq or not ours or not theirs:
            raise BadConfig(f"--hf-split {pair!r}: expected EMOVOX_SPLIT=DATASET_SPLIT, "
                            "e.g. train=train,validation=dev,test=test")
        if ours not in EMOVOX_SPLITS:
            raise BadConfig(f"--hf-split {pair!r}: {ours!r} is not an emovox split; valid: {', '.join(EMOVOX_SPLITS)}")
        if ours in out or theirs in out.values():
            raise BadConfig(f"--hf-split {text!r}: {ours if ours in out else theirs!r} is named twice")
        out[ours] = theirs
    return out or None


def prepare_hf(root: Path, *, audio_dir: Path, options: HFOptions = HFOptions(), progress: bool = False) -> Scan:
    """Read a Hugging Face dataset folder and write its clips as FLAC under ``audio_dir``.

    Raises:
        BadManifest: not a dataset folder ``datasets`` can read, no audio or label column (the
            message lists the columns there are), or splits that map to no emovox split.
    """
    with tempfile.TemporaryDirectory(prefix="emovox-hf-") as cache:  # audiofolder's index of paths
        parts = load_splits(root, cache_dir=cache)
        chosen, notes = _choose_splits(root, list(parts), options.splits)
        scan = Scan(notes=notes)
        for theirs, ours in chosen.items():
            ds = parts[theirs]
            cols = _columns(root, theirs, ds, options)
            scan_split(ds, cols, root=root, name=theirs, split=ours, audio_dir=audio_dir / (ours or ALL),
                       scan=scan, progress=progress)
    return scan


def hub_ids_of(root: Path) -> list[str]:
    """The hub dataset id of a folder inside the Hugging Face cache (``datasets--OWNER--NAME``)."""
    for part in Path(root).resolve().parts:
        if part.startswith("datasets--") and part.count("--") >= 2:
            return ["/".join(part.split("--")[1:3])]
    return []


def load_splits(root: Path, *, cache_dir: str) -> dict[str, Any]:
    """The dataset's splits by name (one unnamed split, ``""``, for a plain ``Dataset``).

    Raises:
        BadManifest: ``datasets`` is not installed or the folder is not a dataset it reads.
    """
    try:
        import datasets
    except ImportError:
        raise BadManifest("--corpus hf needs the `datasets` package: pip install 'emovox[hf]'") from None
    if not root.is_dir():
        raise BadManifest(f"{root}: not a folder (give a save_to_disk, Parquet or audiofolder folder with --root)")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # its own bars (file listing, caching) say nothing to a user here
    try:
        if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
            loaded = datasets.load_from_disk(str(root))
        elif any(root.rglob("*.parquet")):
            loaded = datasets.load_dataset("parquet", data_dir=str(root), streaming=True)
        else:
            loaded = _load_audiofolder(datasets, root, cache_dir)
    except BadManifest:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadManifest(f"{root}: not a Hugging Face dataset folder datasets can read ({first}); expected a "
                          "save_to_disk folder, Parquet files or an audiofolder with metadata.csv") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    return dict(loaded) if hasattr(loaded, "keys") else {"": loaded}


def _load_audiofolder(datasets, root: Path, cache_dir: str):
    """``audiofolder`` with an ``Audio`` feature that stores paths without torchcodec: its own
    encoder imports torchcodec even for a path, which it only stores."""
    builder = datasets.load_dataset_builder("audiofolder", data_dir=str(root), cache_dir=cache_dir)
    builder.BASE_FEATURE = stored_audio_feature(datasets)
    builder.download_and_prepare()
    return builder.as_dataset()


def stored_audio_feature(datasets):
    """An ``Audio`` feature class that encodes a path or bytes as stored ({"bytes", "path"})."""
    from dataclasses import dataclass as _dc

    @_dc(repr=False)
    class StoredAudio(datasets.Audio):
        def encode_example(self, value):
            if isinstance(value, (str, Path)):
                return {"bytes": None, "path": str(value)}
            if isinstance(value, (bytes, bytearray)):
                return {"bytes": bytes(value), "path": None}
            return {"bytes": value.get("bytes"), "path": value.get("path")}

    return StoredAudio


def _choose_splits(root: Path, names: list[str], mapping: Mapping[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """dataset split -> emovox split ("" when emovox makes the splits), and notes."""
    shown = ", ".join(n or "(one unnamed split)" for n in names)
    if mapping:
        missing = [t for t in mapping.values() if t not in names]
        if missing:
            raise BadManifest(f"{root}: --hf-split names dataset split(s) {', '.join(missing)} that do not exist; "
                              f"the dataset has: {shown}")
        chosen = {theirs: ours for ours, theirs in mapping.items()}
        skipped = [n for n in names if n not in chosen]
        notes = [f"dataset split(s) {', '.join(skipped)} not in --hf-split: left out"] if skipped else []
        return chosen, notes
    if len(names) == 1:
        note = (f"the dataset has one split ({shown}): speaker-independent splits are made"
                if names[0] else "")
        return {names[0]: ""}, [note] if note else []
    unknown = [n for n in names if n.lower() not in SPLIT_ALIASES]
    if unknown:
        raise BadManifest(f"{root}: dataset split(s) {', '.join(unknown)} have no emovox name; the dataset has: "
                          f"{shown}; map them with --hf-split train=NAME,validation=NAME,test=NAME")
    chosen = {n: SPLIT_ALIASES[n.lower()] for n in names}
    doubled = sorted({v for v in chosen.values() if list(chosen.values()).count(v) > 1})
    if doubled:
        raise BadManifest(f"{root}: dataset splits {shown} give {', '.join(doubled)} twice; "
                          "choose with --hf-split train=NAME,validation=NAME,test=NAME")
    return chosen, []


@dataclass
class Columns:
    """The columns of one split that become manifest fields."""

    audio: str
    label: str
    label_names: list[str] | None
    speaker: str | None
    sentence: str | None
    intensity: str | None
    groups: dict[str, str] = field(default_factory=dict)  # manifest group column -> dataset column

    def names(self) -> list[str]:
        return [c for c in (self.audio, self.label, self.speaker, self.sentence, self.intensity, *self.groups.values())
                if c]


def _columns(root: Path, split: str, ds, options: HFOptions) -> Columns:
    """Pick the audio, label, speaker, sentence and intensity columns of a split.

    Raises:
        BadManifest: no audio column, or no (or an unknown) label or speaker column; the message
            names the columns that exist.
    """
    features = ds.features or {}
    names = list(features) or list(getattr(ds, "column_names", None) or [])
    where = f"{root}" + (f" [{split}]" if split else "")
    listed = ", ".join(names) or "none"

    def named(wanted: Iterable[str]) -> str | None:
        lower = {n.lower().strip(): n for n in names}
        return next((lower[w] for w in wanted if w in lower), None)

    audio = next((n for n, f in features.items() if type(f).__name__ in ("Audio", "StoredAudio")
                  or isinstance(f, dict) and {"bytes", "path"} <= set(f)), None) or named(PATH_COLUMNS)
    if audio is None:
        raise BadManifest(f"{where}: no audio column (an Audio feature or one of {', '.join(PATH_COLUMNS)}); "
                          f"columns: {listed}")
    label = options.label
    if label and label not in names:
        raise BadManifest(f"{where}: --hf-label {label!r} is not a column; columns: {listed}")
    class_labels = [n for n, f in features.items() if type(f).__name__ == "ClassLabel"]
    label = label or named(LABEL_COLUMNS) or (class_labels[0] if len(class_labels) == 1 else None)
    if label is None:
        raise BadManifest(f"{where}: no label column (a ClassLabel or one of {', '.join(LABEL_COLUMNS)}); "
                          f"columns: {listed}; name it with --hf-label")
    speaker = options.speaker
    if speaker and speaker not in names:
        raise BadManifest(f"{where}: --hf-speaker {speaker!r} is not a column; columns: {listed}")
    feature = features.get(label)
    label_names = list(feature.names) if type(feature).__name__ == "ClassLabel" else None
    return Columns(audio=audio, label=label, label_names=label_names, speaker=speaker or named(SPEAKER_COLUMNS),
                   sentence=named(SENTENCE_COLUMNS), intensity=named(("intensity", "level")),
                   groups=group_columns([n for n in names if n not in (audio, label, speaker)]))


def scan_split(ds, cols: Columns, *, root: Path, name: str, split: str, audio_dir: Path, scan: Scan,
               progress: bool) -> None:
    """Decode, check and write every clip of one split; good clips become rows, bad ones problems."""
    import datasets

    if type((ds.features or {}).get(cols.audio)).__name__ in ("Audio", "StoredAudio"):
        ds = ds.cast_column(cols.audio, datasets.Audio(decode=False))
    ds = ds.select_columns(cols.names())
    audio_dir.mkdir(parents=True, exist_ok=True)
    group_names = {k: _class_names(ds, c) for k, c in cols.groups.items()}
    for i, ex in enumerate(_bar(ds, name, progress)):
        stored = ex[cols.audio]
        source = (stored.get("path") if isinstance(stored, dict) else stored) or ""
        where = f"{root} [{name or 'data'}] row {i}" + (f" ({source})" if source else "")
        label = _label(ex[cols.label], cols.label_names)
        if not label:
            scan.problems.append((where, f"no label in column {cols.label!r}"))
            continue
        try:
            wave = _decode(stored, root=root, where=where)
        except BadAudio as exc:
            scan.problems.append((where, _reason(str(exc), where)))
            continue
        path = audio_dir / f"{i:06d}.flac"
        write_audio(path, wave)
        text = {c: "" if ex.get(c) is None else str(ex[c]).strip() for c in (cols.speaker, cols.sentence, cols.intensity) if c}
        groups = {k: normalise_group(k, _label(ex[c], group_names[k])) for k, c in cols.groups.items()}
        scan.rows.append(row(path, label=label, split=split, speaker=text.get(cols.speaker, ""),
                             sentence=text.get(cols.sentence, ""), intensity=text.get(cols.intensity, ""),
                             gender=groups.pop("gender", ""), extra=groups))


def _class_names(ds, column: str) -> list[str] | None:
    feature = (ds.features or {}).get(column)
    return list(feature.names) if type(feature).__name__ == "ClassLabel" else None


def _label(value: Any, names: list[str] | None) -> str:
    if value is None:
        return ""
    if names is not None and isinstance(value, int):
        return names[value] if 0 <= value < len(names) else ""  # ClassLabel -1: no label
    return str(value).strip()


def _decode(stored: Any, *, root: Path, where: str):
    """The clip's wave (16 kHz mono float32) from stored bytes, else from its path.

    Raises:
        BadAudio: neither bytes nor a readable file, or audio no model should see.
    """
    if isinstance(stored, dict) and stored.get("bytes"):
        return decode_bytes(stored["bytes"], where=where)
    path = stored.get("path") if isinstance(stored, dict) else stored
    if not path:
        raise BadAudio(f"{where}: neither audio bytes nor a path stored")
    full = Path(path) if Path(path).is_absolute() else root / path
    try:
        return load_audio(full)
    except BadAudio as exc:
        raise BadAudio(f"{where}: {_reason(str(exc), str(full))}") from None


def _reason(message: str, where: str) -> str:
    return message[len(where) + 2:] if message.startswith(f"{where}: ") else message


def _bar(ds, name: str, progress: bool):
    if not progress:
        return ds
    from tqdm import tqdm

    total = len(ds) if hasattr(ds, "__len__") else None
    return tqdm(ds, total=total, desc=f"reading {name or 'dataset'}", unit="clip", mininterval=0.5)
