"""``emovox ensemble``: several trained models saved as one run dir, with one temperature.

The members are checked and copied by :func:`emovox.models.ensemble.assemble`; here the
ensemble's temperature is fitted on the averaged probabilities of a manifest's *validation*
split (never on test), and the model card is written.

Which speakers the temperature sees matters: members trained on those speakers are
over-confident on them. Seeds of one recipe share their validation speakers, so fitting on them
is fair. Cross-validation folds do not: each fold's run trained on the others' validation speakers
(its refit too), so give a manifest whose validation speakers no member trained on, or none (T = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import BadConfig
from ..models.ensemble import assemble
from ..rundir import RunDir, update_meta


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
    """Fit and store the temperature of ``log(averaged probabilities)`` on a split's clips.

    Returns:
        The fit as stored in ``emovox.json`` (``temperature_fit``): temperature, clips, speakers,
        NLL before and after, the manifest and split.
    """
    from ..evaluation.evaluate import labelled_split
    from scipy.special import log_softmax

    from ..evaluation.metrics import fit_temperature
    from ..inference.predict import Predictor

    predictor = Predictor.from_run_dir(run_dir)  # temperature 1.0 as assembled: probabilities are the average
    df, _ = labelled_split(manifest, split, predictor.scheme)
    rows = list(predictor.scored(list(df["path"]), progress=progress))
    ok = [i for i, (_, p, _, _) in enumerate(rows) if p is not None]
    if not ok:
        raise BadConfig(f"{manifest}: no clip of the {split} split could be scored; cannot fit a temperature")
    logits = np.log(np.clip(np.stack([rows[i][1] for i in ok]).astype(np.float64), 1e-12, None))
    y = np.array([predictor.scheme.labels.index(df["label"].iloc[i]) for i in ok])
    t = float(fit_temperature(logits, y))
    idx = np.arange(len(y))
    fit = {"temperature": round(t, 4), "manifest": str(Path(manifest).resolve()), "split": split, "clips": len(y),
           "speakers": int(df["speaker"].iloc[ok].nunique()),
           "nll_before": round(float(-log_softmax(logits, axis=1)[idx, y].mean()), 4),
           "nll_after": round(float(-log_softmax(logits / t, axis=1)[idx, y].mean()), 4)}
    update_meta(RunDir(Path(run_dir)), temperature=fit["temperature"], temperature_fit=fit)
    return fit


def summary_line(r: EnsembleResult) -> str:
    """What ``emovox ensemble`` prints."""
    if r.fit is None:
        how = "temperature 1.0 (none fitted: give --manifest to fit one on its validation speakers)"
    else:
        f = r.fit
        how = (f"temperature {f['temperature']:.3f} fitted on {f['clips']} {f['split']} clips of {f['speakers']} "
               f"speaker(s) (NLL {f['nll_before']:.3f} -> {f['nll_after']:.3f})")
    return f"wrote ensemble {r.run_dir} ({r.members} members); {how}"
