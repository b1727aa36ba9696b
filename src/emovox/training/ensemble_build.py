"""``emovox ensemble``: several trained models saved as one run dir, with one temperature.

:func:`assemble` checks the members (same labels, same front end: see ``models/ensemble.py``)
and copies them into the layout ``models/ensemble.py`` loads; :func:`fit_ensemble_temperature`
fits the ensemble's temperature on the averaged probabilities of a manifest's *validation* split
(never on test); then the model card is written.

Which speakers the temperature sees matters: members trained on those speakers are
over-confident on them. Seeds of one recipe share their validation speakers, so fitting on them
is fair. Cross-validation folds do not: each fold's run trained on the others' validation speakers
(its refit too), so give a manifest whose validation speakers no member trained on, or none (T = 1).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import BadConfig, BadRunDir
from ..models.backbones import backbone_for
from ..models.ensemble import KIND, MEMBERS_DIR
from ..models.loading import check_weights, feature_extractor_for
from ..models.source import open_source
from ..rundir import META, RunDir, environment, update_meta

ROOT_FILES = ("config.json", "preprocessor_config.json")
SKIPPED = ("checkpoint-*", "tensorboard", "runs", "*.png", "train_log.jsonl", "README.md")
PROBE_SECONDS = ((0.4, 1.1, 0.3), (0.0, 2.3, 0.6))  # (leading silence, sound, trailing silence): trimming shows


@dataclass
class EnsembleResult:
    """What ``build_ensemble`` wrote: the run dir, its members, and the temperature fit (or None)."""

    run_dir: Path
    members: int
    temperature: float
    fit: dict | None


def build_ensemble(*, runs: Sequence[str | Path], out: str | Path, manifest: str | Path | None = None,
                   split: str = "validation", allow_pickle: bool = False, progress: bool = False) -> EnsembleResult:
    """Save ``runs`` as one ensemble run dir and fit its temperature on ``manifest``'s ``split``.

    Args:
        runs: Two or more local models (run dirs, ``save_pretrained`` folders) with the same labels
            and the same front end.
        out: The ensemble run dir to create (absent or empty).
        manifest: Where the temperature is fitted; None keeps 1.0 (the averaged probabilities).
        split: The manifest split the temperature is fitted on: ``validation`` or ``train``, never test.

    Raises:
        BadRunDir: members that cannot be ensembled (see ``assemble``). BadConfig: ``split`` test.
        BadManifest: labels outside the members' scheme, or an empty split.
    """
    if split == "test":
        raise BadConfig("the ensemble's temperature is fitted on validation speakers, never on the test split "
                        "(--split validation)")
    out = assemble(runs, out, allow_pickle=allow_pickle)
    fit = fit_ensemble_temperature(out, manifest, split=split, progress=progress) if manifest else None
    from ..modelcard import write_model_card

    write_model_card(out)
    return EnsembleResult(out, len(runs), fit["temperature"] if fit else 1.0, fit)


def fit_ensemble_temperature(run_dir: str | Path, manifest: str | Path, *, split: str = "validation",
                             progress: bool = False) -> dict:
    """Fit and store the temperature of ``log(averaged probabilities)`` on a split's clips, when
    no member trained on that split's speakers (else it stays 1.0, and the fit says why).

    Returns:
        The fit as stored in ``emovox.json`` (``temperature_fit``): temperature, clips, speakers,
        NLL before and after, the manifest and split; or ``skipped`` with the reason.
    """
    from scipy.special import log_softmax

    from ..evaluation.evaluate import labelled_split
    from ..evaluation.metrics import fit_temperature
    from ..inference.predict import Predictor

    predictor = Predictor.from_run_dir(run_dir)  # temperature 1.0 as assembled: probabilities are the average
    df, _ = labelled_split(manifest, split, predictor.scheme)
    where = {"manifest": str(Path(manifest).resolve()), "split": split, "speakers": int(df["speaker"].nunique())}
    seen = sorted(set(map(str, df["speaker"])) & trained_speakers(run_dir))
    if seen:
        fit = {**where, "temperature": 1.0, "skipped": f"members trained on the {split} speakers {', '.join(seen[:5])} "
               "(their train split, or a refit on train + validation: training.head_refit), where they are "
               "over-confident; give a manifest whose validation speakers no member saw"}
        update_meta(RunDir(Path(run_dir)), temperature=1.0, temperature_fit=fit)
        return fit
    rows = list(predictor.scored(list(df["path"]), progress=progress))
    ok = [i for i, (_, p, _, _) in enumerate(rows) if p is not None]
    if not ok:
        raise BadConfig(f"{manifest}: no clip of the {split} split could be scored; cannot fit a temperature")
    logits = np.log(np.clip(np.stack([rows[i][1] for i in ok]).astype(np.float64), 1e-12, None))
    y = np.array([predictor.scheme.labels.index(df["label"].iloc[i]) for i in ok])
    t = float(fit_temperature(logits, y))
    idx = np.arange(len(y))
    fit = {**where, "temperature": round(t, 4), "clips": len(y),
           "nll_before": round(float(-log_softmax(logits, axis=1)[idx, y].mean()), 4),
           "nll_after": round(float(-log_softmax(logits / t, axis=1)[idx, y].mean()), 4)}
    update_meta(RunDir(Path(run_dir)), temperature=fit["temperature"], temperature_fit=fit)
    return fit


def trained_speakers(run_dir: str | Path) -> set[str]:
    """Speakers any member of an ensemble trained on, from each member's training manifest (train
    split, and validation where the head was refit on it); members that do not say add none."""
    from ..data.manifest import load_manifest
    from ..models.ensemble import member_dirs

    out: set[str] = set()
    for d in member_dirs(run_dir):
        meta = json.loads((d / META).read_text()) if (d / META).is_file() else {}
        manifest = meta.get("manifest")
        if not manifest or not Path(manifest).is_file():
            continue
        splits = {"train", "validation"} if meta.get("config", {}).get("training", {}).get("head_refit") else {"train"}
        df = load_manifest(manifest)
        out |= set(map(str, df.loc[df["split"].isin(splits), "speaker"]))
    return out


def summary_line(r: EnsembleResult) -> str:
    """What ``emovox ensemble`` prints."""
    f = r.fit
    if f is None:
        how = "temperature 1.0 (none fitted: give --manifest to fit one on its validation speakers)"
    elif "skipped" in f:
        how = f"temperature 1.0, not fitted: {f['skipped']}"
    else:
        how = (f"temperature {f['temperature']:.3f} fitted on {f['clips']} {f['split']} clips of {f['speakers']} "
               f"speaker(s) (NLL {f['nll_before']:.3f} -> {f['nll_after']:.3f})")
    return f"wrote ensemble {r.run_dir} ({r.members} members); {how}"


def assemble(runs: Sequence[str | Path], out: str | Path, *, allow_pickle: bool = False) -> Path:
    """Check the members and write the ensemble run dir (temperature 1.0 until one is fitted).

    Args:
        runs: Two or more local models: emovox run dirs or ``save_pretrained`` folders (ensembles too).
        out: The folder to create (absent or empty).

    Raises:
        BadRunDir: fewer than two members, a member that is not a local model, members whose
            labels or inputs differ (one line naming both), or ``out`` holding files.
    """
    out = Path(out)
    if len(runs) < 2:
        raise BadRunDir(f"an ensemble needs two or more models; got {len(runs)}")
    for r in runs:
        if not Path(r).is_dir():
            raise BadRunDir(f"ensemble member {r} is not a local folder; give run dirs or save_pretrained folders")
        if out.resolve() == Path(r).resolve() or out.resolve().is_relative_to(Path(r).resolve()):
            raise BadRunDir(f"--out {out} lies inside member {r}; choose a folder outside the members")
        check_weights(r, allow_pickle=allow_pickle)
    if out.exists() and any(out.iterdir()):
        raise BadRunDir(f"{out} exists and is not empty; choose a new folder for the ensemble")
    sources = [open_source(r, allow_pickle=allow_pickle) for r in runs]
    check_labels(sources)
    fronts = [front_end(s) for s in sources]
    check_front_ends(sources, fronts)
    names = _member_names(runs)
    for r, name in zip(runs, names):
        shutil.copytree(r, out / MEMBERS_DIR / name, ignore=shutil.ignore_patterns(*SKIPPED), dirs_exist_ok=True)
    shortest = min(range(len(sources)), key=lambda i: fronts[i]["limit"])  # windows fit every member
    for name in ROOT_FILES:
        src = out / MEMBERS_DIR / names[shortest] / name
        if src.is_file():
            shutil.copyfile(src, out / name)
    if not (out / ROOT_FILES[1]).is_file():  # a save_pretrained folder without one: its family's default
        fronts[shortest]["fe"].save_pretrained(str(out))
    (out / META).write_text(json.dumps(ensemble_meta(sources, names), indent=2))
    return out


def check_labels(sources: Sequence[Any]) -> None:
    """Refuse members whose labels (names and order) differ from the first member's.

    Raises:
        BadRunDir: one line naming both models and their labels.
    """
    first = sources[0]
    for s in sources[1:]:
        if s.scheme.labels != first.scheme.labels:
            raise BadRunDir(f"cannot ensemble {s.ref} with {first.ref}: their labels differ "
                            f"({','.join(s.scheme.labels)} vs {','.join(first.scheme.labels)}); members must "
                            "share one label list in the same order")


def front_end(source: Any) -> dict[str, Any]:
    """What a member's input looks like: family, input name, mask use, the features of the probe
    waves, and the longest input it takes (seconds; inf when unlimited)."""
    family = backbone_for(source.config, strict=False)
    fe = feature_extractor_for(source.ref, source.config)
    limit = family.max_seconds(source.config) or float("inf")
    return {"family": family, "fe": fe, "input": family.input_name, "mask": family.uses_attention_mask(fe),
            "features": [family.featurize(fe, w) for w in probe_waves()], "limit": limit}


def check_front_ends(sources: Sequence[Any], fronts: Sequence[dict[str, Any]]) -> None:
    """Refuse members that need different inputs (see the module docstring).

    Raises:
        BadRunDir: one line naming both models and how their inputs differ.
    """
    a = fronts[0]
    for s, b in zip(sources[1:], fronts[1:]):
        why = ""
        if (a["input"], a["mask"]) != (b["input"], b["mask"]):
            why = (f"{a['family'].family or 'generic'} takes {a['input']}{' with a mask' if a['mask'] else ''}, "
                   f"{b['family'].family or 'generic'} {b['input']}{' with a mask' if b['mask'] else ''}")
        elif any(x.shape != y.shape or not np.allclose(x, y, atol=1e-5) for x, y in zip(a["features"], b["features"])):
            why = "their feature extractors turn the same wave into different inputs (settings, mel bins or trimming)"
        if why:
            raise BadRunDir(f"cannot ensemble {s.ref} with {sources[0].ref}: {why}; members must share one front "
                            "end (score them side by side with `emovox predict RUN1 RUN2 ...` instead)")


def probe_waves() -> list[np.ndarray]:
    """Deterministic waves with silence around a voiced sound, so settings that differ show."""
    from ..data.audio import SAMPLE_RATE

    rng = np.random.default_rng(0)
    out = []
    for lead, sound, trail in PROBE_SECONDS:
        t = np.arange(int(sound * SAMPLE_RATE)) / SAMPLE_RATE
        voiced = 0.3 * np.sin(2 * np.pi * (140 + 30 * np.sin(3 * t)) * t) + 0.02 * rng.standard_normal(t.size)
        quiet = [1e-4 * rng.standard_normal(int(s * SAMPLE_RATE)) for s in (lead, trail)]
        out.append(np.concatenate([quiet[0], voiced, quiet[1]]).astype(np.float32))
    return out


def ensemble_meta(sources: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """``emovox.json`` of an ensemble: the first member's scheme, the shortest training length,
    what each member is, and the data section when every member saw the same manifest."""
    first = sources[0]
    scheme = first.meta.get("scheme") or first.scheme.to_dict()
    prints = {s.meta.get("manifest_fingerprint") for s in sources}
    members = [{"path": f"{MEMBERS_DIR}/{n}", "source": str(Path(s.ref).resolve()),
                "model_source": s.meta.get("model_source") or getattr(s.config, "_name_or_path", "") or s.ref,
                "model_type": str(getattr(s.config, "model_type", "")), "temperature": s.temperature,
                "kind": s.meta.get("kind", "model"), "seed": s.meta.get("seed"),
                "evaluation": dict(s.meta.get("evaluation") or {})}
               for s, n in zip(sources, names)]
    meta = {"kind": KIND, "scheme": scheme, "members": members,
            "model_source": ", ".join(m["model_source"] for m in members),
            "max_seconds": min(s.max_seconds for s in sources), "temperature": 1.0, "temperature_in_weights": False,
            "temperature_fit": None, "environment": environment()}
    if len(prints) == 1 and None not in prints:
        meta.update(manifest_fingerprint=first.meta["manifest_fingerprint"], manifest=first.meta.get("manifest"),
                    data=first.meta.get("data", {}))
    return meta


def _member_names(runs: Sequence[str | Path]) -> list[str]:
    """``01-NAME``: the folder's name, with its parent's where the name alone is generic (``fold-2-run``)."""
    out = []
    for i, r in enumerate(runs, start=1):
        p = Path(r).resolve()
        name = f"{p.parent.name}-{p.name}" if p.name in ("run", "model", "out") else p.name
        out.append(f"{i:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:60]}")
    return out
