"""``emovox stress``: re-score a manifest split under named, seeded degradations and report how
much UAR each one costs.

Each clip is decoded once; every condition degrades the clean copies in memory (never on disk,
never in the corpus) with a generator keyed by (seed, condition name, clip), so a run with a
subset of conditions degrades each clip exactly as the full run does. Babble is made from other
speakers' clips of the same split. The report is ``stress.json`` (one row per condition and the
clean row), ``stress.csv``, ``stress.png`` (UAR drop per condition) and ``report.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.audio import SAMPLE_RATE, load_audio, window_bounds
from ..errors import BadAudio, BadManifest
from ..inference.predict import Predictor
from .conditions import Babble, Condition, bitrate, conditions as parse_conditions
from .evaluate import labelled_split
from .groups import group_metrics, group_values
from .metrics import classification_metrics, paired_uar_difference

ROW_KEYS = ("uar", "accuracy", "macro_f1", "ece", "n")
CHUNK = 32  # clips degraded and scored together (memory: one degraded copy of a chunk)


def stress(*, model: str | Path | Sequence[str | Path], manifest: str | Path, out: str | Path, split: str = "test",
           conditions: str | Sequence[str] | None = None, seed: int = 0, backend: str = "torch",
           threads: int | None = None, progress: bool = False, allow_pickle: bool = False,
           by: Sequence[str] = ()) -> dict:
    """Score ``split`` clean and under each condition; write the stress report into ``out``.

    Args:
        model: A model (or several, an ensemble) as ``evaluate`` takes them.
        conditions: Names or family names, comma-separated or a list (see
            :mod:`emovox.evaluation.conditions`); default: every default condition.
        seed: Seeds every random degradation (noise, babble picks, room responses).
        by: Manifest columns (gender, speaker, ...): every row also gets the UAR of each group and
            the largest gap (``groups``), so a report shows whom a condition hurts most.

    Returns:
        What ``stress.json`` holds: ``model``, ``manifest``, ``split``, ``seed``, ``clean`` (uar,
        accuracy, macro_f1, ece, n) and ``conditions`` (one row each: name, family, params, the
        same metrics, ``uar_drop`` with its paired-bootstrap 95% interval, ``flipped``: the share
        of clips whose predicted label changed).

    Raises:
        BadConfig: an unknown condition. BadManifest: labels outside the scheme, an empty split, or
        no clip decodes. BadRunDir: a model that cannot be loaded.
    """
    conds = parse_conditions(conditions)  # a typo fails before the model loads
    models = [model] if isinstance(model, (str, Path)) else list(model)
    predictor = Predictor.from_run_dir(models, backend=backend, threads=threads, allow_pickle=allow_pickle)
    scheme = predictor.scheme
    df, _ = labelled_split(manifest, split, scheme)
    for column in by:
        group_values(df, column, where=str(manifest))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    waves, df = _decode(df, out)
    y = np.array([scheme.id(lab) for lab in df["label"]])
    groups = {c: group_values(df, c, where=str(manifest)) for c in by}
    speakers = list(df["speaker"])
    babble = Babble(waves, speakers)
    bar = _bar((len(conds) + 1) * len(waves), progress)
    clean_probs = np.concatenate([_probs(predictor, waves[i:i + CHUNK], bar) for i in range(0, len(waves), CHUNK)])
    clean = _metrics(y, clean_probs, scheme, groups)
    rows = []
    for cond in conds:
        bar.set_postfix_str(cond.name)
        probs = np.concatenate([_probs(predictor, _degrade(cond, waves, speakers, start, seed, babble), bar)
                                for start in range(0, len(waves), CHUNK)])
        rows.append(_row(cond, y, clean_probs, probs, scheme, waves, seed, groups))
    bar.close()
    result = {"model": [str(m) for m in models], "manifest": str(manifest), "split": split, "seed": seed,
              "speakers": sorted(set(speakers)), "by": list(by), "clean": clean, "conditions": rows}
    from .stress_report import write_stress_report

    write_stress_report(out, result)
    return result


def _decode(df: pd.DataFrame, out: Path) -> tuple[list[np.ndarray], pd.DataFrame]:
    waves, ok, errors = [], [], []
    for path in df["path"]:
        try:
            waves.append(load_audio(path))
            ok.append(True)
        except BadAudio as exc:
            errors.append((path, str(exc)))
            ok.append(False)
    if errors:
        pd.DataFrame(errors, columns=["path", "error"]).to_csv(out / "errors.csv", index=False)
    if not waves:
        raise BadManifest(f"no clip of the split could be decoded (see {out / 'errors.csv'})")
    return waves, df[ok].reset_index(drop=True)


def _degrade(cond: Condition, waves: list[np.ndarray], speakers: list[str], start: int, seed: int,
             babble: Babble) -> list[np.ndarray]:
    return [cond.apply(waves[i], rng=cond.key(seed, i), babble=babble, exclude=speakers[i])
            for i in range(start, min(start + CHUNK, len(waves)))]


def _probs(predictor: Predictor, waves: list[np.ndarray], bar) -> np.ndarray:
    """Probabilities per clip; clips longer than the predictor's window are scored in
    half-overlapping windows and averaged, as ``evaluate`` scores long files."""
    window = int(predictor.window_seconds * SAMPLE_RATE)
    pieces, owner = [], []
    for i, w in enumerate(waves):
        for s, e in window_bounds(len(w), window, window // 2):
            pieces.append(w[s:e])
            owner.append(i)
    p = predictor.probs(pieces).astype(np.float64)
    out = np.zeros((len(waves), p.shape[1]))
    np.add.at(out, owner, p)
    bar.update(len(waves))
    return out / np.bincount(owner, minlength=len(waves))[:, None]


def _metrics(y: np.ndarray, probs: np.ndarray, scheme, groups: dict[str, list[str]]) -> dict:
    m = classification_metrics(y, probs, scheme)
    out = {k: m[k] for k in ROW_KEYS}
    if groups:
        out["groups"] = {}
        for column, values in groups.items():
            g = group_metrics(y, probs, values, scheme, reps=0)  # per condition: the gap alone
            out["groups"][column] = {"uar": {k: v["uar"] for k, v in g["groups"].items()},
                                     "gap": g["gap"]["uar"]["value"] if g["gap"] else None}
    return out


def _row(cond: Condition, y: np.ndarray, clean: np.ndarray, probs: np.ndarray, scheme, waves: list[np.ndarray],
         seed: int, groups: dict[str, list[str]]) -> dict:
    drop, lo, hi = paired_uar_difference(y, clean.argmax(axis=1), probs.argmax(axis=1), len(scheme), seed=seed)
    params = dict(cond.params)
    rates = [r for r in (bitrate(cond, w) for w in waves[:16]) if r is not None]
    if rates:
        params["measured_kbps"] = round(float(np.mean(rates)), 2)
    return {"name": cond.name, "family": cond.family, "params": params, **_metrics(y, probs, scheme, groups),
            "uar_drop": drop, "uar_drop_ci": [lo, hi],
            "flipped": float(np.mean(clean.argmax(axis=1) != probs.argmax(axis=1)))}


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="stress", unit="clip", disable=not enabled, mininterval=1.0)

