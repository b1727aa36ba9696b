"""Pseudo-labelling: confident predictions on unlabelled audio become extra training rows."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import BadConfig
from ..data.manifest import COLUMNS, MANIFEST_NAME, save_manifest
from ..inference.predict import Predictor, expand_inputs


@dataclass
class PseudoLabelResult:
    manifest: Path
    kept: int
    scored: int
    failed: int


def pseudo_label(*, runs: list[str | Path], inputs: list[str | Path], out: str | Path, min_confidence: float = 0.9,
                 progress: bool = False) -> PseudoLabelResult:
    """Write a manifest (split ``train``, corpus ``pseudo``) of files predicted with at least
    ``min_confidence`` (calibrated probability of the top label). Mix it into training with
    ``data.extra_train=[DIR/manifest.csv]``.

    Raises:
        BadConfig: ``min_confidence`` outside (0, 1].
    """
    if not 0 < min_confidence <= 1:
        raise BadConfig(f"--min-confidence must be in (0, 1], got {min_confidence}")
    predictor = Predictor.from_run_dir(runs)
    files = expand_inputs(inputs)
    rows, scored, failed = [], 0, 0
    for row in predictor.predict_files(files, top_k=1, progress=progress):
        if "error" in row:
            failed += 1
            continue
        scored += 1
        if row["score"] >= min_confidence:
            emotion, intensity = predictor.scheme.split(row["label"])
            rows.append({"path": row["path"], "speaker": "", "sentence": "", "emotion": emotion,
                         "intensity": intensity, "label": row["label"], "duration": _duration(row["path"]),
                         "split": "train", "corpus": "pseudo", "confidence": row["score"]})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=[*COLUMNS, "confidence"])
    df.to_csv(out / "confidences.csv", index=False, columns=["path", "label", "confidence"])
    manifest = save_manifest(df, out / MANIFEST_NAME)
    return PseudoLabelResult(manifest, len(rows), scored, failed)


def _duration(path: str) -> float:
    from ..data.audio import read_info

    return read_info(path).duration
