"""``emovox adapt``: unsupervised adaptation of a run to a target domain from unlabelled audio.

A head trained on cached frozen features sees standardised features: the training corpus's own
mean and standard deviation per feature, folded into the head's first linear layer when the run is
saved (``feature_scaling``). Another corpus (language, microphone, speakers) shifts those feature
statistics, and the head then reads most clips as one class ("everything comes out angry").
Adaptation re-estimates the standardisation on the target's unlabelled clips and folds it into the
same head: the result is an ordinary run dir (predict, evaluate, serve, export; a plain pipeline
where the head allows) whose ``emovox.json`` and model card record the target and its clip count.

Runs fine-tuned through the encoder have no separable standardisation (their normalisation lives
inside the encoder's layers); ``adapt`` refuses them in one line rather than pretend.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import from_dict
from ..data.manifest import inspect_files
from ..errors import BadAudio, BadRunDir
from ..inference.predict import expand_inputs
from ..labels import LabelScheme
from ..modelcard import write_model_card
from ..models.loading import feature_extractor_for, load_trained, save_trained
from ..rundir import RunDir, open_run, read_meta, update_meta
from .common import fold_temperature
from .feature_scaling import UNSCALED_HEAD, load_unscaled_head, refold, save_unscaled_head
from .features import clip_features
from .runlock import LOCK_NAME, holds_run_lock

log = logging.getLogger("emovox")
FEW_CLIPS = 30  # below this, target statistics are noisy: said in a note


@dataclass
class AdaptResult:
    """The adapted run dir and what it was adapted on."""

    run_dir: Path
    clips: int
    skipped: list[tuple[str, str]]


@holds_run_lock("adapt")
def adapt(*, run: str | Path, targets: Sequence[str | Path], out: str | Path, progress: bool = True) -> AdaptResult:
    """Re-estimate a frozen-feature run's feature standardisation on unlabelled target audio.

    Args:
        run: An emovox run dir trained on cached frozen features (``model.freeze_backbone`` and
            ``model.cache_features``, the Whisper probe recipes).
        targets: Audio files, folders of them, or manifests / CSV lists (their labels are ignored).
        out: The adapted run dir to write (a new folder).
        progress: Show encoding progress.

    Returns:
        An :class:`AdaptResult`; files that cannot be read are skipped, each named in a note.

    Raises:
        BadRunDir: ``run`` is not such a run, or ``out`` is ``run`` itself.
        BadAudio: no target file could be read.
    """
    run, out = Path(run), Path(out)
    meta = read_meta(open_run(run))
    unscaled = load_unscaled_head(run)
    if unscaled is None:
        raise BadRunDir(f"{run}: adapt re-estimates the feature standardisation of a head trained on cached frozen "
                        f"features (model.freeze_backbone and model.cache_features, e.g. configs/whisper-probe.yaml); "
                        f"this run has none ({UNSCALED_HEAD} missing: fine-tuned, or trained before emovox kept it)")
    if out.resolve() == run.resolve():
        raise BadRunDir(f"{out}: adapt writes a new run dir; choose another --out than the run itself")
    paths, skipped = _readable(expand_inputs(targets))
    cfg = from_dict(meta["config"], source=str(RunDir(run).meta))
    scheme = LabelScheme.from_dict(meta["scheme"])
    model = load_trained(run)
    fe = feature_extractor_for(run, model.config)
    frame = pd.DataFrame({"path": paths, "label": scheme.labels[0], "duration": cfg.data.max_seconds})
    x = clip_features(model, fe, frame, scheme, cfg, progress=progress)
    try:
        refold(model, unscaled, x)
    except ValueError as exc:
        raise BadRunDir(f"{run}: cannot adapt: {exc}") from None
    if meta.get("temperature_in_weights"):
        fold_temperature(model, float(meta.get("temperature") or 1.0))
    _copy_run(run, out)
    save_trained(model.eval(), out)
    save_unscaled_head(unscaled, out)
    update_meta(RunDir(out), adaptation={
        "from_run": str(run.resolve()), "method": "feature standardisation re-estimated on the target (unlabelled)",
        "target": [str(t) for t in targets], "clips": len(paths), "skipped": len(skipped)})
    write_model_card(out)
    return AdaptResult(out, len(paths), skipped)


def _readable(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The target files that decode, and (path, reason) for the others, each said in a note."""
    checked = inspect_files(paths, workers=1)
    good = [p for p, c in zip(paths, checked) if not c[2]]
    bad = [(p, c[2]) for p, c in zip(paths, checked) if c[2]]
    for path, reason in bad:
        log.info(f"skipped {path}: {reason}")
    if not good:
        raise BadAudio(f"no target audio could be read ({len(bad)} file(s) given); adapt needs unlabelled clips "
                       "of the target domain")
    if len(good) < FEW_CLIPS:
        log.info(f"only {len(good)} target clips: their feature statistics are noisy (use {FEW_CLIPS} or more)")
    return good, bad


def _copy_run(run: Path, out: Path) -> None:
    """The run dir's files (not its checkpoints or logs of training) into a new folder."""
    if out.exists() and any(not p.name.startswith(LOCK_NAME) for p in out.iterdir()):
        raise BadRunDir(f"{out}: exists and is not empty; adapt writes a new run dir")
    shutil.copytree(run, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("checkpoint-*", "tensorboard", ".emovox.lock*"))


MIN_SPEAKER_CLIPS = 10  # fewer clips: the speaker's statistics are too noisy; the split's are used


def evaluate_speaker_adapted(*, run: str | Path, manifest: str | Path, out: str | Path, split: str = "test",
                             min_clips: int = MIN_SPEAKER_CLIPS, all_labels: bool = False,
                             progress: bool = False) -> dict:
    """``evaluate`` with per-speaker adaptation: each speaker of the split with ``min_clips`` or more
    clips is scored with the run's standardisation re-estimated on that speaker's own clips (the
    rest on the whole split's). Transductive (it uses the test speakers' unlabelled audio), so it
    is reported apart: the report and ``metrics.json`` (``method``) say so, and the model card keeps
    only plain evaluations.

    Returns:
        The metrics, as ``evaluate`` returns them.

    Raises:
        BadRunDir: the run has no frozen-feature standardisation (as for :func:`adapt`).
        BadManifest: as ``evaluate``.
    """
    from ..evaluation.evaluate import evaluate
    from ..evaluation.metrics import softmax

    run = Path(run)
    unscaled = load_unscaled_head(run)
    if unscaled is None:
        raise BadRunDir(f"{run}: --adapt speaker re-estimates the feature standardisation of a head trained on "
                        f"cached frozen features; this run has none ({UNSCALED_HEAD} missing)")
    meta = read_meta(open_run(run))
    cfg, scheme = from_dict(meta["config"], source=str(RunDir(run).meta)), LabelScheme.from_dict(meta["scheme"])
    model = load_trained(run)
    fe = feature_extractor_for(run, model.config)
    temperature = float(meta.get("temperature") or 1.0)  # refolding drops any temperature folded into the weights

    def scorer(df: pd.DataFrame):
        paths, bad = _readable(list(df["path"]))
        keep = df[df["path"].isin(set(paths))].reset_index(drop=True)
        x = clip_features(model, fe, keep.assign(label=scheme.labels[0], duration=cfg.data.max_seconds), scheme,
                          cfg, progress=progress)
        logits = speaker_adapted_logits(model, unscaled, x, keep["speaker"].astype(str), min_clips=min_clips)
        probs = dict(zip(keep["path"], softmax(logits / temperature)))
        return [probs.get(p) for p in df["path"]], bad

    return evaluate(runs=[run], manifest=manifest, out=out, split=split, all_labels=all_labels, scorer=scorer,
                    method=f"per-speaker adaptation (transductive: each speaker with >= {min_clips} clips "
                           "standardised by its own unlabelled clips; the rest by the split's)")


def speaker_adapted_logits(model, unscaled: dict, x, speakers, *, min_clips: int = MIN_SPEAKER_CLIPS) -> np.ndarray:
    """Logits of features ``x`` with the head's standardisation re-estimated per speaker: on the
    speaker's own rows when they have ``min_clips`` or more, else on all of ``x``."""
    import torch

    from ..models.heads import pooled_logits

    groups = pd.Series(list(speakers)).groupby(list(speakers)).indices
    logits: np.ndarray | None = None
    small = [r for r in groups.values() if len(r) < min_clips]
    parts = [(r, r) for r in groups.values() if len(r) >= min_clips]
    if small:
        parts.append((np.concatenate(small), np.arange(len(x))))
    for rows, basis in parts:
        refold(model, unscaled, x[torch.from_numpy(basis)])
        with torch.no_grad():
            part = pooled_logits(model, x[torch.from_numpy(rows)]).logits.float().numpy()
        logits = np.zeros((len(x), part.shape[1]), dtype=np.float32) if logits is None else logits
        logits[rows] = part
    return logits
